"""Server settings: command-line options win over CORRELATOR_* environment variables, which win
over a TOML config file, which wins over the defaults. One object, passed to `create_app`, so a
test builds exactly the server it needs."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from correlator.analysis import Options
from correlator.api.storage import POOL_TIMEOUT, check_database_url
from correlator.errors import CorrelatorError
from correlator.fleet import DEFAULT_SHARDS

#: The environment variable naming a config file when `--config` is not given.
CONFIG_ENV = "CORRELATOR_CONFIG"
#: The shortest token accepted: guessing 16 random characters over HTTP is out of reach.
MIN_TOKEN = 16


def check_token(value: str, what: str = "token") -> str:
    """A secret the server checks callers against: at least MIN_TOKEN characters, with no space
    or control character (a header value cannot carry them reliably, and ' ' is no secret)."""
    if len(value) < MIN_TOKEN or any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError(f"the {what} must be at least {MIN_TOKEN} characters with no space or control "
                         "character (make one with `openssl rand -hex 16`)")
    return value


def default_state_dir() -> Path:
    """XDG's state folder: analyses are state (kept across restarts), not cache."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "correlator"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CORRELATOR_", extra="forbid", toml_file=None,
                                      hide_input_in_errors=True)  # a bad token is never echoed

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    token: SecretStr | None = None
    """Bearer token every route but health requires (docs and schema too); mandatory off loopback."""
    allowed_hosts: list[str] = Field(default_factory=list)
    """Host names clients may use in `Host` besides the bound address, localhost (on loopback),
    the machine's name and IP literals: a web page on any other name that resolves to this server
    (DNS rebinding) is refused. `*` turns the check off (behind a proxy that checks it)."""
    probe: bool | None = None
    """Whether POST /probe connects anywhere; default: on with a token, off without one (then any
    local program, or a web page, could make the server scan the plant network)."""
    probe_networks: list[IPvAnyNetwork] = Field(default_factory=list)
    """The networks /probe may connect to (every address the host resolves to must be in one);
    empty: any."""
    state_dir: Path = Field(default_factory=default_state_dir)
    database: str | None = None
    """Where analyses, findings and timelines are kept: none or `sqlite:` is a SQLite file in
    `state_dir` (the embedded default); `postgresql://user@host:port/dbname` a PostgreSQL database
    that several servers and workers share (correlator/api/storage.py). Uploads wait in
    `state_dir` either way."""
    pool_timeout: float = Field(default=POOL_TIMEOUT, gt=0, le=60)
    """Seconds a request waits for a PostgreSQL connection before it is answered 503 (the
    database down or restarting, or every connection busy): shorter answers sooner, longer rides
    out a busier database."""
    max_upload_bytes: int = Field(default=512 * 1024**2, gt=0)
    max_analyses: int = Field(default=100, gt=0)
    """Oldest analyses are deleted beyond this count."""
    max_age_days: float = Field(default=30.0, gt=0)
    failed_upload_days: float = Field(default=7.0, gt=0)
    """A failed analysis keeps its upload this long (to look into, or retry), then only its row."""
    background_bytes: int = Field(default=2 * 1024**2, ge=0)
    """Bundles that read more than this (an archive's members uncompressed) are analysed in the
    background (202 and a status to poll, `workers` at a time); smaller ones are answered
    finished (201), which is what a support script wants, on slots of their own."""
    workers: int = Field(default=2, ge=1, le=64)
    """Large analyses run at once, each in a process of its own; more wait in a queue."""
    small_workers: int = Field(default=2, ge=1, le=64)
    """Small analyses run at once, on slots large ones never take."""
    analysis_timeout: float = Field(default=3600.0, gt=0)
    """Seconds an analysis may run before it is stopped and marked failed."""
    analysis_memory_mb: int = Field(default=2048, ge=64)
    """Resident memory (MB) an analysis process may reach before it is stopped and marked failed."""
    webhook_url: str | None = Field(default=None, pattern=r"^https?://")
    """Where to POST when any analysis finishes (an upload's `webhook` wins); see api/webhooks.py."""
    webhook_secret: SecretStr | None = None
    """Key of the HMAC-SHA256 signature header (X-Correlator-Signature-256) of every webhook."""
    webhook_attempts: int = Field(default=5, ge=1, le=20)
    """Tries per webhook delivery at most."""
    webhook_backoff: float = Field(default=2.0, gt=0, le=60)
    """Seconds before the second try, doubling after (at most a minute between tries)."""
    cors_origins: list[str] = Field(default_factory=list)
    """Empty: no CORS headers at all (a browser page elsewhere cannot call the API)."""
    zones: list[str] = Field(default_factory=list)
    """--tz rules applied to every analysis and to the live sources."""
    formats_dirs: list[str] = Field(default_factory=list)
    rules_dirs: list[str] = Field(default_factory=list)
    live_paths: list[Path] = Field(default_factory=list)
    """Files and folders to tail while the server runs; empty: the live routes answer 404."""
    nats: str | None = None
    """NATS servers, comma-separated (`nats://host1:4222,nats://host2:4222`): uploads are kept in
    the cluster and analysed by `correlator worker` processes (correlator/fleet); none: by this
    server's own processes (the embedded default)."""
    nats_replicas: int = Field(default=3, ge=1, le=5)
    """Nodes that keep a copy of each job and bundle (1 for a single nats-server)."""
    job_ack_wait: float = Field(default=30.0, ge=1, le=3600)
    """Seconds a worker may go silent before its job is given to another (workers send in-progress
    acks every third of it while they analyse)."""
    job_attempts: int = Field(default=3, ge=1, le=20)
    """Workers a job may lose (killed mid-job) before its analysis is marked failed."""
    fleet_retention_days: float = Field(default=7.0, gt=0)
    """Jobs no worker took, and bundles of failed analyses, are dropped from the cluster after this."""
    jobs_max: int = Field(default=10_000, ge=1)
    """Jobs waiting at most; beyond, uploads are refused (503) rather than dropped."""
    bundles_max_bytes: int = Field(default=10 * 1024**3, gt=0)
    """Bytes of bundles the cluster keeps at most; beyond, uploads are refused (503)."""
    events_max_bytes: int = Field(default=1024**3, gt=0)
    """Bytes of the edge agents' events the cluster keeps at most (the oldest are dropped)."""
    findings_max_bytes: int = Field(default=256 * 1024**2, gt=0)
    """Bytes of the sites' live findings the cluster keeps at most (the oldest are dropped)."""
    fleet_shards: int = Field(default=DEFAULT_SHARDS, ge=1, le=1024)
    """Shards the sites are hashed into (the subjects `correlator.events.<shard>.<site>.<host>`):
    at most this many live workers share the sites. Every agent, live worker and API node of a
    cluster must have the same: the first to start stores it on the cluster, and one with another
    count refuses to start (fleet/agent.py, `agree_shards`)."""
    site_checkpoint_seconds: float = Field(default=30.0, ge=0, le=86400)
    """Seconds between two checkpoints of a site's live analysis (its state, kept on the cluster):
    a live worker that takes a shard over resumes each site from its checkpoint and reads again
    about this much of the shard's messages, not all it keeps. 0: after every batch."""
    site_lease: float = Field(default=10.0, ge=1, le=600)
    """Seconds a live worker may go silent before another takes its sites over (it renews its
    leases every third of it)."""
    live_stitch_window: float = Field(default=0.01, gt=0, le=10)
    """Seconds (of log time) a live event waits for the other side of its connection before it
    is analysed: most of the delay from a line to its finding, which benchmarks/api.py measures
    at about twice the window plus up to one 0.1 s clock tick (0.3 s, LiveAnalysis's own default:
    ~0.67 s; 0.1 s: ~0.27 s; 0.01 s: ~0.07 s). Lines of one connection on tailed files arrive
    within milliseconds, and on the sample incidents 0.01 s finds what 0.3 s finds."""

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)

    @field_validator("token")
    @classmethod
    def _strong_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_token(value.get_secret_value())
        return value

    @field_validator("database")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        return check_database_url(value)

    @property
    def probe_enabled(self) -> bool:
        return self.token is not None if self.probe is None else self.probe

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def analysis_options(self) -> Options:
        """The options every analysis of this server runs with, uploaded or live."""
        return Options(zones=list(self.zones), formats_dirs=list(self.formats_dirs), rules_dirs=list(self.rules_dirs))

    def check_exposure(self) -> None:
        """Refuse to serve bundles (customer logs, certificates) to a network without a token."""
        if not self.loopback and self.token is None:
            raise CorrelatorError(f"refusing to listen on {self.host} without a token: set --token or "
                                  "CORRELATOR_TOKEN (only 127.0.0.1, ::1 and localhost may go without one)")


def load_settings(config_file: str | Path | None = None, **options: Any) -> Settings:
    """Settings from the options given (None means 'not given'), the environment and the config
    file (`config_file`, else $CORRELATOR_CONFIG)."""
    path = config_file or os.environ.get(CONFIG_ENV)
    given = {k: v for k, v in options.items() if v is not None}
    cls = Settings
    if path:
        file = Path(path)
        if not file.is_file():
            raise CorrelatorError("config file not found", file=file)

        class FileSettings(Settings):
            model_config = SettingsConfigDict(env_prefix="CORRELATOR_", extra="forbid", toml_file=file,
                                              hide_input_in_errors=True)

        cls = FileSettings
    try:
        return cls(**given)
    except ValueError as exc:  # pydantic's ValidationError and tomllib's TOMLDecodeError
        where = f" (config file {path})" if path else ""
        raise CorrelatorError(f"bad settings{where}: {exc}") from None
