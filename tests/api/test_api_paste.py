"""A pasted excerpt as a text/plain body, from a non-browser client (curl, a ticketing system):
read as the CLI reads `analyze -`, and refused with 422 when no line of it is a log line."""

from __future__ import annotations

from api_helpers import SAMPLES, RunningServer

BROKER = (SAMPLES / "bad_credentials" / "broker" / "mosquitto.log").read_text().splitlines()


def test_a_text_plain_paste_is_analysed(shared: RunningServer) -> None:
    paste = "\n".join(["```", *("    " + line for line in BROKER), "```"]) + "\n"
    with shared.client() as client:
        response = client.post("/analyses", content=paste.encode(), headers={"Content-Type": "text/plain"})
        assert response.status_code == 201, response.text
        created = response.json()
        findings = client.get(f"/analyses/{created['id']}/findings").json()["items"]
    assert created["name"] == "paste.log"
    assert "auth.bad_credentials" in {f["id"] for f in findings}


def test_a_text_with_no_log_line_is_refused(shared: RunningServer) -> None:
    with shared.client() as client:
        response = client.post("/analyses", content=b"Hi, our broker stopped working yesterday. Any idea?\n",
                               headers={"Content-Type": "text/plain; charset=utf-8"})
    assert response.status_code == 422
    assert response.json()["message"].startswith("no log line recognised in the text")
