"""Runtime settings: every ``AGENTRY_*`` environment variable, validated once at startup.

``load_settings`` is the only place the environment is read; the resulting ``Settings``
object is passed down. A bad value becomes a ``ConfigError`` naming the variable, which
the command line prints as one line and exits 2. The table of variables lives in
``docs/architecture.md`` (the contract with the operator) and ``docs/runtime.md``.
"""

from __future__ import annotations

import math
import re
import socket
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent_runtime.errors import ConfigError

ENV_PREFIX = "AGENTRY_"

Environment = Literal["development", "staging", "production"]
LogLevel = Literal["debug", "info", "warning", "error"]
ClientKey = Literal["header", "token", "ip"]


class Skill(BaseModel):
    """One thing the agent is good at, as the A2A agent card lists it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    name: str = Field(min_length=1, max_length=256)
    description: str = Field(default="", max_length=2048)
    tags: list[str] = Field(default_factory=list, max_length=32)


class ToolServer(BaseModel):
    """One MCP server of ``AGENTRY_TOOLS`` (the operator writes them from spec.tools)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    url: str = Field(pattern=r"^https?://[^/@\s]+(/[^@\s]*)?$", max_length=2048)
    timeout_seconds: float = Field(default=30.0, gt=0, le=600, alias="timeoutSeconds")
    allowed_tools: tuple[str, ...] | None = Field(default=None, alias="allowedTools")
    headers_file: Path | None = Field(default=None, alias="headersFile")
    """A file of ``Name: value`` lines sent as headers (read on every connect)."""


class Settings(BaseSettings):
    """The runtime's configuration; field ``x`` is read from ``AGENTRY_X``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    environment: Environment = "development"
    host: str = "0.0.0.0"  # noqa: S104 - a pod listens on its own IP
    port: int = 8080
    agent_name: str = "agent"
    namespace: str = "default"
    replica: str = Field(default_factory=socket.gethostname)

    state_backend: Literal["memory", "pvc", "configmap", "postgres"] = "pvc"
    state_dir: Path = Path("/var/lib/agentry/state")
    state_generations: int = Field(default=3, ge=1, le=32)
    state_set_aside: str = ""  # a fresh start's stamp: move unreadable pvc files aside once
    accept_state_rollback: bool = False
    """Serve state older than the heartbeat's high-water mark in production (it is refused
    there otherwise); set it after checking why checkpoint or journal files went missing."""
    keys_dir: Path | None = None
    postgres_url: str | None = Field(default=None, repr=False)
    """libpq URI of the shared database (backend postgres); holds a password: never shown."""
    postgres_url_file: Path | None = None
    """A file holding that URI instead (the connection Secret's key, mounted); read again
    when it changes, so a rotated password reaches new connections without a restart."""
    postgres_schema: str = Field(default="agentry", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    postgres_pool_size: int = Field(default=10, ge=1, le=100)
    postgres_sslmode: (
        Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None
    ) = None
    """Overrides the URI's sslmode when set."""
    postgres_cache_sessions: int = Field(default=1000, ge=0)
    """Hot sessions each replica keeps in memory (LRU); the rest are read on demand."""
    state_retention_seconds: float = Field(default=0.0, ge=0)
    """postgres: sessions idle this long are deleted by a background pass. 0: kept."""

    model_provider: Literal["builtin", "openai"] = "builtin"
    model_endpoint: str | None = None
    model_name: str | None = None
    model_api_key_file: Path | None = None
    model_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    """One request's deadline for its reply: every attempt and backoff included."""
    model_max_retries: int = Field(default=2, ge=0, le=10)
    model_key_check_interval_seconds: float = Field(default=300.0, gt=0)
    fallback: Literal["builtin", "reject"] = "builtin"
    circuit_failure_threshold: int = Field(default=5, ge=1)
    circuit_open_seconds: float = Field(default=30.0, gt=0)

    instructions: str = Field(default="", max_length=65_536)
    """The system message sent to the model on every turn (PROFILE_DIR's file wins)."""
    description: str = Field(default="", max_length=2048)
    """What the agent does, for its A2A card and ``GET /v1/models``."""
    skills: list[Skill] = Field(default_factory=list, max_length=64)
    """The agent card's skills, as a JSON list of {id, name, description, tags}."""
    public_url: str | None = None
    """The URL clients reach the agent at, for the A2A card; unset, each request's own
    address (and X-Forwarded-* headers) is used."""
    profile_dir: Path | None = None
    """A directory with ``instructions``, ``description`` and ``skills.json``: read on
    every turn when they changed, so an edit reaches a running agent without a restart."""

    rate_limit_rps: float = Field(default=0.0, ge=0)
    rate_limit_burst: int = Field(default=0, ge=0)
    rate_limit_per_client: bool = True
    rate_limit_client_rps: float = Field(default=0.0, ge=0)
    """Each client's share of this replica's rate; 0 means half of RATE_LIMIT_RPS."""
    rate_limit_client_burst: int = Field(default=0, ge=0)
    """Each client's bucket size; 0 means half of RATE_LIMIT_BURST (at least 1)."""
    rate_limit_client_key: ClientKey | None = None
    """How clients are told apart; unset means ``token`` with auth on, else ``header``."""
    rate_limit_max_clients: int = Field(default=10_000, ge=1)
    limits_file: Path | None = None
    """JSON with this replica's rate and burst (``limits.py``), reloaded when it changes;
    when set, it replaces RATE_LIMIT_RPS, _BURST, _CLIENT_RPS and _CLIENT_BURST."""
    tokens_per_minute: int = Field(default=0, ge=0)
    """This replica's model tokens a minute (the limits file replaces it); 0: no budget."""
    client_tokens_per_minute: int = Field(default=0, ge=0)
    """One client's tokens a minute; 0 means half of TOKENS_PER_MINUTE."""
    max_concurrent: int = Field(default=64, ge=1)
    max_concurrent_per_client: int = Field(default=0, ge=0)
    """One client's requests in flight (its body being read included); 0 means half of
    MAX_CONCURRENT (at least 1)."""
    max_body_bytes: int = Field(default=65_536, ge=1024)
    body_read_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """The whole request body must arrive within this; a slower one gets 408."""
    idle_connection_timeout_seconds: float = Field(default=75.0, gt=0, le=3600)
    """A connection with no request in progress is closed after this: one that never
    completes its request line and headers (they trickle, or nothing comes), or a keep-alive
    connection left idle. aiohttp's own default is an hour, so 500 silent sockets held
    their file descriptors that long. Longer than common load balancers' idle timeouts
    (60 s), so that a proxy's pooled connection is never closed under it mid-reuse."""

    max_turns: int = Field(default=1000, ge=0)
    """Turns one session may hold; more are refused with 409. 0: no limit."""
    max_session_bytes: int = Field(default=4 * 1024 * 1024, ge=0)
    """UTF-8 bytes of one session's messages; a question past it is refused with 413."""
    max_sessions: int = Field(default=10_000, ge=0)
    """Sessions this replica holds; a new one beyond it is refused with 507. 0: no limit."""
    max_state_bytes: int = Field(default=256 * 1024 * 1024, ge=0)
    """UTF-8 bytes of all sessions' messages on this replica; beyond it, 507. 0: no limit."""
    session_idle_ttl_seconds: float = Field(default=0.0, ge=0)
    """Sessions idle this long are erased as by DELETE. 0: kept until deleted."""

    tools: list[ToolServer] = Field(default_factory=list, max_length=32)
    """The MCP servers whose tools the model may call, as a JSON list (docs/tools.md)."""
    tool_max_steps: int = Field(default=8, ge=1, le=64)
    """Model calls of one turn that may ask for tools before the turn is ended."""
    tool_max_parallel: int = Field(default=4, ge=1, le=32)
    """Tool calls of one step that run at the same time."""
    tool_list_refresh_seconds: float = Field(default=30.0, gt=0)
    """How often a server that could not be reached is tried again (and its list re-read)."""

    checkpoint_interval_seconds: float = Field(default=30.0, gt=0)
    shutdown_grace_seconds: float = Field(default=20.0, gt=0)
    """After the listener closes: how long in-flight requests may take to finish."""
    shutdown_delay_seconds: float | None = Field(default=None, ge=0, le=120)
    """After SIGTERM: how long to keep serving while /readyz fails, before the listener
    closes, so that every proxy has dropped the pod from its endpoints; unset means 5 in
    staging and production, 0 in development."""
    auth_tokens_file: Path | None = None
    auth_failures_per_minute: int = Field(default=20, ge=0)
    """Failed authentications one address may make a minute before it gets 429; 0 is off."""

    heartbeat: Literal["auto", "lease", "none"] = "auto"
    heartbeat_interval_seconds: float = Field(default=10.0, gt=0)

    log_level: LogLevel | None = None
    log_dir: Path = Path("/tmp")  # noqa: S108 - checked for free space only
    min_free_disk_bytes: int = Field(default=16 * 1024 * 1024, ge=0)

    @field_validator("port")
    @classmethod
    def _port_in_range(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError("must be between 1 and 65535")
        return value

    @field_validator("agent_name", "namespace", "replica")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not value or len(value) > 253:
            raise ValueError("must be 1 to 253 characters")
        return value

    @field_validator("model_endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        if "@" in parts.netloc:
            # Raised as a _SettingError so the message never echoes the URL's password.
            raise _SettingError(
                "model_endpoint",
                "must not contain user:password@; put the API key in the file named by "
                "AGENTRY_MODEL_API_KEY_FILE (spec.model.apiKeySecretRef)",
            )
        return value.rstrip("/")

    @field_validator("postgres_url")
    @classmethod
    def _libpq_url(cls, value: str | None) -> str | None:
        problem = None if value is None else libpq_url_problem(value)
        if problem is not None:
            raise _SettingError("postgres_url", problem)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.model_provider == "openai":
            if not self.model_endpoint:
                raise _SettingError("model_endpoint", "required when MODEL_PROVIDER is openai")
            if not self.model_name:
                raise _SettingError("model_name", "required when MODEL_PROVIDER is openai")
        if self.environment != "development" and self.keys_dir is None:
            raise _SettingError(
                "keys_dir", f"required in {self.environment} (mount the key Secret there)"
            )
        if self.state_backend == "postgres" and not (self.postgres_url or self.postgres_url_file):
            raise _SettingError(
                "postgres_url",
                f"required when STATE_BACKEND is postgres (or {env_name('postgres_url_file')})",
            )
        if self.rate_limit_client_key == "token" and self.auth_tokens_file is None:
            raise _SettingError(
                "rate_limit_client_key",
                "token needs AGENTRY_AUTH_TOKENS_FILE: without auth every Authorization header "
                "would get a bucket of its own (use header or ip)",
            )
        if self.rate_limit_rps > 0 and self.rate_limit_burst == 0:
            object.__setattr__(self, "rate_limit_burst", max(1, math.ceil(self.rate_limit_rps)))
        if self.max_concurrent_per_client == 0:
            object.__setattr__(self, "max_concurrent_per_client", max(1, self.max_concurrent // 2))
        return self

    @property
    def effective_log_level(self) -> LogLevel:
        if self.log_level is not None:
            return self.log_level
        return "debug" if self.environment == "development" else "info"

    @property
    def effective_client_key(self) -> ClientKey:
        """``token`` by default with auth on: a caller cannot choose its token's identity,
        while with ``header`` it picks its own bucket (and can drain another's)."""
        if self.rate_limit_client_key is not None:
            return self.rate_limit_client_key
        return "token" if self.auth_tokens_file is not None else "header"

    @property
    def effective_shutdown_delay_seconds(self) -> float:
        if self.shutdown_delay_seconds is not None:
            return self.shutdown_delay_seconds
        return 0.0 if self.environment == "development" else 5.0

    @property
    def rate_limit_enabled(self) -> bool:
        return self.rate_limit_rps > 0

    def redacted(self) -> dict[str, Any]:
        """The effective settings for people: file paths shown, secret contents never."""
        data = self.model_dump(mode="json")
        if self.model_endpoint:
            data["model_endpoint"] = redact_url(self.model_endpoint)
        if self.postgres_url:
            data["postgres_url"] = redact_url(self.postgres_url)
        data["log_level"] = self.effective_log_level
        data["rate_limit_client_key"] = self.effective_client_key
        return {ENV_PREFIX + key.upper(): value for key, value in data.items()}


def libpq_url_problem(value: str) -> str | None:
    """What is wrong with `value` as a libpq connection URI, or None; never echoes it."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return "is not a URI (postgresql://...)"
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        return "must be a postgresql://user:password@host:port/db URI"
    return None


class _SettingError(ValueError):
    """Raised inside validators to name a setting other than the one being validated."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


_SECRET_PARAMETER = re.compile(
    r"(?i).*(key|token|secret|passw|pwd|auth|credential|signature|^sig$|^code$).*"
)


def redact_url(url: str) -> str:
    """``url`` fit to show: no ``user:password@``, no value of a secret-looking query parameter.

    ``?api_key=…``, ``?access_token=…`` or an Azure ``?sig=…`` become ``=***``; other
    parameters (``api-version``) stay readable; a URL too broken to take apart is ``***``.
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.username or parts.password:
            netloc = f"***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "***"
    query = urlencode(
        [
            (name, "***" if _SECRET_PARAMETER.fullmatch(name) else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the environment; raise ``ConfigError`` naming the first bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise _to_config_error(exc) from None


def _to_config_error(exc: ValidationError) -> ConfigError:
    error = exc.errors()[0]
    ctx_error = (error.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _SettingError):
        return ConfigError(env_name(ctx_error.field), ctx_error.reason)
    field = str(error["loc"][0]) if error["loc"] else "settings"
    message = error["msg"].removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    raw = error.get("input")
    got = raw if isinstance(raw, str) else repr(raw)
    if field in ("model_endpoint", "postgres_url"):
        got = redact_url(got)
    return ConfigError(env_name(field), f"{message} (got {got})")


def check_files(settings: Settings) -> None:
    """Referenced files and directories must exist; checked at startup and by check-config."""
    if settings.keys_dir is not None and not settings.keys_dir.is_dir():
        raise ConfigError(env_name("keys_dir"), f"not a directory ({settings.keys_dir})")
    for field in ("model_api_key_file", "auth_tokens_file", "limits_file", "postgres_url_file"):
        path = getattr(settings, field)
        if path is not None and not Path(path).is_file():
            raise ConfigError(env_name(field), f"file not found ({path})")
    if settings.model_provider == "openai" and settings.model_api_key_file is None:
        raise ConfigError(env_name("model_api_key_file"), "required when MODEL_PROVIDER is openai")
