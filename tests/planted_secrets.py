"""A bundle with every form of secret planted where a customer's bundle carries them by accident:
private keys of every PEM kind dumped over many lines into logs (one at a log's very start), the
password file with CRLF endings, a plain-text password file, argon2, bcrypt, sha512-crypt and
mosquitto PBKDF2 hashes and `password=`/`pw:`/`"pass":`/URL passwords in evidence lines, and a
bridge password in mosquitto.conf. `secrets` lists the strings no output may ever hold.

The base is the real `bad_credentials` incident; the planted text is marked as planted, not
passed off as what a program logged. The keys are made fresh with `cryptography`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"

#: Hashes as other tools write them (argon2-cffi's, bcrypt's and glibc crypt's documented forms).
ARGON2 = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$Kx9tTgu1w0QZf7q4mH1C+Aw3n0h2N6bJmYkQ0x2WQ5E"
BCRYPT = "$2b$12$GhvMmNVjRW29ulnudl.LbuAnUtN/LRfe1JsBm1Xu6LE3059z5Tr8m"
SHA512_CRYPT = "$6$rounds=5000$saltsaltsaltsalt$PnYpO1WmR1e3n3Xr7LfwL7o8bZ5E5z2E0o5G7d2vVtPp1aQkF0bUuWjZ1wVh5pCq"
PASSWORDS = ("Pair-S3cret-1", "Pair-S3cret-2", "Pair-S3cret-3", "Url-S3cret-4", "Plain-S3cret-5", "Br1dge-S3cret-6")


def _keys() -> dict[str, str]:
    """One private key of each PEM kind, as text."""
    pkcs8 = serialization.PrivateFormat.PKCS8
    pem = serialization.Encoding.PEM
    none = serialization.NoEncryption()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    return {
        "RSA PRIVATE KEY": rsa_key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL, none).decode(),
        "PRIVATE KEY": rsa_key.private_bytes(pem, pkcs8, none).decode(),
        "ENCRYPTED PRIVATE KEY": ec_key.private_bytes(
            pem, pkcs8, serialization.BestAvailableEncryption(b"key-pass")).decode(),
        "EC PRIVATE KEY": ec_key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL, none).decode(),
        "OPENSSH PRIVATE KEY": ed_key.private_bytes(pem, serialization.PrivateFormat.OpenSSH, none).decode(),
    }


def _body_lines(key: str) -> list[str]:
    return [line for line in key.splitlines() if line and not line.startswith("-----") and len(line) >= 16]


def plant(target: Path) -> tuple[Path, list[str]]:
    """The planted bundle in `target/planted` and the secrets no output may hold."""
    bundle = target / "planted"
    shutil.copytree(SAMPLES / "bad_credentials", bundle)
    keys = _keys()
    passwd = (bundle / "broker" / "passwd").read_text()
    hashes = [line.partition(":")[2] for line in passwd.splitlines()]
    secrets = [*hashes, ARGON2, BCRYPT, SHA512_CRYPT, *PASSWORDS]
    for key in keys.values():
        secrets += _body_lines(key)
    # the password file as a Windows editor saves it, and a plain-text one named like anything
    (bundle / "broker" / "passwd").write_bytes(passwd.replace("\n", "\r\n").encode())
    (bundle / "broker" / "users.txt").write_bytes(b"MyEACM:Plain-S3cret-5\r\nHMI:Plain-S3cret-5x\r\n")
    secrets.append("Plain-S3cret-5x")
    with (bundle / "broker" / "mosquitto.conf").open("a") as conf:
        conf.write("connection plant-bridge\naddress 192.0.2.7:8883\nremote_username bridge\n"
                   "remote_password Br1dge-S3cret-6\n")

    broker = bundle / "broker" / "mosquitto.log"
    lines = broker.read_text().splitlines()
    dump = [f"{lines[4].split(':')[0]}: planted: key dump follows"]
    for kind in ("RSA PRIVATE KEY", "OPENSSH PRIVATE KEY"):
        dump += keys[kind].splitlines()
    dump.append(f"{lines[4].split(':')[0]}: planted: passwd line {passwd.splitlines()[0]}")
    broker.write_text("\n".join([*lines[:5], *dump, *lines[5:]]) + "\n")

    client = bundle / "clients" / "edge-10.log"
    lines = client.read_text().splitlines()
    refused = next(i for i, line in enumerate(lines) if "broker refused the connection" in line)
    stamp = lines[refused][:23]
    lines[refused] += (f" (planted: mqtts://MyEACM:Url-S3cret-4@127.0.0.1:54257 password=Pair-S3cret-1 "
                       f"pw: Pair-S3cret-2 {{\"pass\": \"Pair-S3cret-3\"}} hash MyEACM:{hashes[0]})")
    second = next(i for i, line in enumerate(lines) if "broker refused the connection" in line and i > refused)
    lines[second] += f" (planted: {ARGON2} {BCRYPT} {SHA512_CRYPT})"
    key_dump = [f"{stamp} DEBUG lab.client: planted: the client's key"]
    key_dump += [f"{stamp} DEBUG lab.client: {line}" for line in keys["PRIVATE KEY"].splitlines()]
    client.write_text("\n".join([*lines[:2], *key_dump, *lines[2:]]) + "\n")

    # a log that starts with a key (a debug dump) is still a log, not a certificate file
    debug = bundle / "clients" / "edge-10-debug.log"
    debug.write_text(keys["ENCRYPTED PRIVATE KEY"] + keys["EC PRIVATE KEY"] + "\n".join(lines[:12]) + "\n")
    return bundle, secrets


def leaks(text: str, secrets: list[str]) -> list[str]:
    """The secrets `text` holds (and any PEM key label), for an assertion message."""
    found = [secret for secret in secrets if secret in text]
    if "PRIVATE KEY-----" in text:
        found.append("PRIVATE KEY-----")
    return found
