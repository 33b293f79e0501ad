"""Pydantic models of the Agent resource: the one source of its spec, status and CRD schema.

Handlers validate an Agent body into `Agent`; builders read the typed spec; `crd.py` turns
these models (field docstrings included) into the CRD's OpenAPI schema with its CEL rules.
Field names follow ../shared/DESIGN.md ("The Agent resource") in camelCase on the wire.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

Environment = Literal["development", "staging", "production"]
Provider = Literal["builtin", "openai"]
Fallback = Literal["builtin", "reject"]
ClientKey = Literal["header", "token", "ip"]
Backend = Literal["configmap", "pvc", "postgres"]
SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
Phase = Literal["Pending", "Running", "Degraded", "Suspended", "Failed"]
WhenUnsatisfiable = Literal["ScheduleAnyway", "DoNotSchedule"]

# A Kubernetes quantity as the API server parses it (k8s.io/apimachinery resource.Quantity).
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
Quantity = int | Annotated[str, Field(pattern=QUANTITY_PATTERN)]
# The operator owns the runtime's settings; pydantic-settings reads env names without
# regard to case, so `agentry_port` would override AGENTRY_PORT as well.
RESERVED_ENV_PREFIX = "AGENTRY_"
# Condition limits of the Kubernetes API conventions (metav1.Condition).
CONDITION_TYPE_MAX = 316
CONDITION_REASON_MAX = 1024
CONDITION_MESSAGE_MAX = 32768
# spec.state.retention: one or more <number><unit>, units s, m, h, d (e.g. 30d, 12h, 1h30m).
DURATION_PATTERN = r"^([0-9]+[smhd])+$"
_DURATION_PART = re.compile(r"([0-9]+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# The one backend whose memory every replica shares (docs/state-and-encryption.md).
SHARED_BACKEND = "postgres"
SINGLE_REPLICA_MESSAGE = (
    "spec.replicas may be more than 1 only with spec.state.backend: postgres (pvc and "
    "configmap keep one replica's memory; use spec.state.backend: postgres to share "
    "sessions across replicas)"
)


def _rules(*rules: tuple[str, str, str | None]) -> dict[str, Any]:
    """CEL rules for `x-kubernetes-validations`: (rule, message, fieldPath or None)."""
    out: list[dict[str, str]] = []
    for rule, message, field_path in rules:
        entry = {"rule": rule, "message": message}
        if field_path:
            entry["fieldPath"] = field_path
        out.append(entry)
    return {"x-kubernetes-validations": out}


class _Model(BaseModel):
    """Base: camelCase on the wire, docstrings become CRD descriptions, unknown keys kept out."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        extra="ignore",
        frozen=True,
    )


class SecretKeyRef(_Model):
    """A key of a Secret in the Agent's namespace."""

    name: str = Field(min_length=1, max_length=253)
    """Name of the Secret."""
    key: str = Field(min_length=1, max_length=253)
    """Key inside the Secret."""


class SecretRef(_Model):
    """A Secret in the Agent's namespace."""

    name: str = Field(min_length=1, max_length=253)
    """Name of the Secret."""


class ModelSpec(_Model):
    """The language model the agent talks to."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                "self.provider != 'openai' || has(self.apiKeySecretRef)",
                "spec.model.apiKeySecretRef is required when provider is openai",
                ".apiKeySecretRef",
            ),
            (
                "self.provider != 'openai' || (has(self.endpoint) && has(self.name))",
                "spec.model.endpoint and spec.model.name are required when provider is openai",
                ".endpoint",
            ),
        )
    )

    provider: Provider = "builtin"
    """builtin (a local responder, no network) or openai (any OpenAI-compatible API)."""
    endpoint: str | None = Field(default=None, pattern=r"^https?://[^/@]+(/[^@]*)?$")
    """Base URL of the chat completions API, ending in /v1; no user:password@ (the key
    belongs in apiKeySecretRef, and a URL is printed where a Secret is not)."""
    name: str | None = Field(default=None, min_length=1)
    """Model name sent to the provider."""
    api_key_secret_ref: SecretKeyRef | None = None
    """Secret key holding the provider's API key; mounted as a file, never in env."""
    timeout_seconds: int = Field(default=30, ge=1, le=600)
    """Deadline of one reply, every attempt and backoff included; keep it below your
    ingress or load balancer timeout."""
    max_retries: int = Field(default=2, ge=0, le=10)
    """Retries after the first attempt."""
    circuit_failure_threshold: int | None = Field(default=None, ge=1, le=10000)
    """Consecutive failed model calls that open the circuit (replies then come from the
    fallback); unset keeps the runtime's default of 5."""
    circuit_open_seconds: float | None = Field(default=None, gt=0, le=3600)
    """How long an open circuit waits before it tries the model again; unset keeps the
    runtime's default of 30."""


class RateLimitSpec(_Model):
    """The request limit of the whole Agent; each replica enforces its share."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                "self.requestsPerSecond == 0.0 || double(self.burst) >= self.requestsPerSecond",
                "spec.rateLimit.burst must be at least spec.rateLimit.requestsPerSecond",
                ".burst",
            ),
            (
                "!has(self.perClientRequestsPerSecond) || "
                "self.perClientRequestsPerSecond <= self.requestsPerSecond",
                "spec.rateLimit.perClientRequestsPerSecond must not exceed "
                "spec.rateLimit.requestsPerSecond",
                ".perClientRequestsPerSecond",
            ),
            (
                "!has(self.perClientTokensPerMinute) || "
                "self.perClientTokensPerMinute <= self.tokensPerMinute",
                "spec.rateLimit.perClientTokensPerMinute must not exceed "
                "spec.rateLimit.tokensPerMinute",
                ".perClientTokensPerMinute",
            ),
            (
                "!has(self.perClientBurst) || self.perClientBurst <= self.burst",
                "spec.rateLimit.perClientBurst must not exceed spec.rateLimit.burst",
                ".perClientBurst",
            ),
        )
    )

    @model_validator(mode="after")
    def _client_tokens_within_agent(self) -> RateLimitSpec:
        client = self.per_client_tokens_per_minute
        if client is not None and client > self.tokens_per_minute:
            raise ValueError(
                "spec.rateLimit.perClientTokensPerMinute must not exceed "
                "spec.rateLimit.tokensPerMinute"
            )
        return self

    requests_per_second: float = Field(default=0.0, ge=0)
    """Sustained requests per second for the whole Agent; 0 turns limiting off."""
    burst: int = Field(default=0, ge=0)
    """Bucket size for the whole Agent; at least requestsPerSecond when limiting is on."""
    per_client: bool = True
    """Give each client its own bucket as well as the shared one."""
    per_client_requests_per_second: float | None = Field(default=None, gt=0)
    """Sustained rate of one client across the Agent; unset gives each client half of
    requestsPerSecond, so one noisy client cannot starve the others."""
    per_client_burst: int | None = Field(default=None, ge=1)
    """Bucket size of one client across the Agent; unset gives half of burst."""
    client_key: ClientKey | None = None
    """How a client is identified: header (X-Client-ID), token or ip. Unset: token when
    spec.auth is enabled, else header. token needs auth; header with auth on lets each
    client pick its own bucket."""
    max_concurrent: int = Field(default=64, ge=1)
    """In-flight requests per replica before new ones are shed with 503."""
    tokens_per_minute: int = Field(default=0, ge=0)
    """Model tokens (input plus output) the whole Agent may use per minute; 0 turns the
    token budget off. A turn reserves an estimate before the model call and is charged
    its real usage after; a spent budget answers 429 with Retry-After."""
    per_client_tokens_per_minute: int | None = Field(default=None, ge=1)
    """Tokens per minute of one client across the Agent (with perClient); unset gives
    each client half of tokensPerMinute."""


class HeadersSource(_Model):
    """Where a tool server's request headers come from."""

    secret_ref: SecretKeyRef
    """A Secret key holding HTTP header lines, one `Name: value` per line (for example
    `Authorization: Bearer <token>`). The pods mount it as a file and read it when they
    connect; the operator never reads it."""


class ToolServerSpec(_Model):
    """An MCP server the agent may call, reached over streamable HTTP."""

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    """Name of the server (a DNS label): it prefixes nothing the model sees, it names the
    server in metrics, health and `kubectl agent tools`."""
    url: str = Field(pattern=r"^https?://[^/@\s]+(/[^@\s]*)?$", max_length=2048)
    """The server's MCP endpoint, e.g. http://search.tools.svc:8000/mcp; no
    user:password@ (put credentials in headersFrom)."""
    headers_from: HeadersSource | None = None
    """Auth headers sent with every request to this server."""
    allowed_tools: list[str] | None = Field(default=None, max_length=256)
    """Only these of the server's tools are offered to the model; unset offers all."""
    timeout_seconds: int = Field(default=30, ge=1, le=600)
    """Deadline of one tool call; past it the model gets an error result."""


class ToolPolicySpec(_Model):
    """How many tool calls one turn may make."""

    max_steps: int = Field(default=8, ge=1, le=64)
    """Model calls in one turn that may ask for tools; the turn then ends with a reply
    saying the step limit was reached."""
    max_parallel: int = Field(default=4, ge=1, le=32)
    """Tool calls of one step that run at the same time."""


class PvcSpec(_Model):
    """The volume of the pvc backend."""

    size: str = Field(default="1Gi", pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")
    """Requested size, a Kubernetes quantity."""
    storage_class_name: str | None = None
    """Storage class; empty uses the cluster's default."""


class EncryptionSpec(_Model):
    """Encryption of state at rest."""

    key_secret_ref: SecretRef | None = None
    """Secret with the key ring (active-key-id, key.<id>); generated as <agent>-keys when
    absent and never regenerated."""


class PostgresSpec(_Model):
    """The PostgreSQL database of the postgres backend."""

    connection_secret_ref: SecretKeyRef
    """Secret key holding a libpq URI (postgresql://user:password@host:5432/db), such as the
    `uri` key of a CloudNativePG `<cluster>-app` Secret. The pods mount it as a file and
    read it again when it changes (a rotated password needs no roll); the operator never
    copies it anywhere else."""
    schema_name: str = Field(
        default="agentry",
        min_length=1,
        max_length=63,
        pattern=r"^[a-z_][a-z0-9_]*$",
        alias="schema",
    )
    """Schema the runtime creates its tables in; several Agents may share a database with
    one schema each or share one schema (rows carry the namespace and Agent)."""
    pool_size: int = Field(default=10, ge=1, le=100)
    """Connections each replica keeps open; the database must allow replicas times poolSize."""
    ssl_mode: SslMode | None = None
    """libpq sslmode, overriding the URI's: disable, allow, prefer, require, verify-ca or
    verify-full. Unset keeps what the URI says (libpq's default is prefer)."""


class StateSpec(_Model):
    """Where the agent's memory lives: one replica's (pvc, configmap) or shared (postgres)."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                "self.backend == 'pvc' || !has(self.pvc)",
                "spec.state.pvc may only be set when spec.state.backend is pvc",
                ".pvc",
            ),
            (
                "self.backend != 'postgres' || has(self.postgres)",
                "spec.state.postgres.connectionSecretRef is required when "
                "spec.state.backend is postgres",
                ".postgres",
            ),
            (
                "self.backend == 'postgres' || !has(self.postgres)",
                "spec.state.postgres may only be set when spec.state.backend is postgres",
                ".postgres",
            ),
            (
                "self.backend == 'postgres' || !has(self.retention)",
                "spec.state.retention needs spec.state.backend: postgres (on pvc and "
                "configmap, spec.sessions.idleTimeoutSeconds expires idle sessions)",
                ".retention",
            ),
        )
    )

    backend: Backend = "pvc"
    """pvc (a volume) or configmap (encrypted ConfigMaps): one replica's memory, no
    dependency, for replicas: 1. postgres: a shared database, any replica serves any
    session, for replicas > 1."""
    checkpoint_interval_seconds: int = Field(default=30, ge=1, le=86400)
    """Cadence of checkpoints (pvc and configmap)."""
    pvc: PvcSpec | None = None
    """Volume settings for the pvc backend."""
    postgres: PostgresSpec | None = None
    """The database of the postgres backend."""
    retention: str | None = Field(default=None, pattern=DURATION_PATTERN, max_length=32)
    """postgres: sessions idle this long are deleted with their rows, e.g. 30d, 12h or
    1h30m (units s, m, h, d). Unset keeps sessions until they are deleted."""
    retain_on_delete: bool = True
    """Keep the state and the key Secret when the Agent is deleted."""
    encryption: EncryptionSpec | None = None
    """Encryption settings."""
    accept_rollback: bool = False
    """Serve state older than the high-water mark in the heartbeat Lease (checkpoint or
    journal files removed or truncated on the volume); production refuses it otherwise.
    Set it once you know why, and unset it after the pods have restarted."""

    @model_validator(mode="after")
    def _backend_fields(self) -> StateSpec:
        if self.backend != SHARED_BACKEND and self.postgres is not None:
            raise ValueError(
                "spec.state.postgres may only be set when spec.state.backend is postgres"
            )
        if self.backend == SHARED_BACKEND and self.postgres is None:
            raise ValueError(
                "spec.state.postgres.connectionSecretRef is required when "
                "spec.state.backend is postgres"
            )
        if self.backend != SHARED_BACKEND and self.retention is not None:
            raise ValueError("spec.state.retention needs spec.state.backend: postgres")
        return self

    @property
    def retention_seconds(self) -> int:
        """spec.state.retention in seconds; 0 when unset (sessions kept until deleted)."""
        if self.retention is None:
            return 0
        return sum(
            int(number) * _UNIT_SECONDS[unit]
            for number, unit in _DURATION_PART.findall(self.retention)
        )


class AuthSpec(_Model):
    """Bearer-token authentication of callers."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                "!self.enabled || has(self.tokenSecretRef)",
                "spec.auth.tokenSecretRef is required when spec.auth.enabled is true",
                ".tokenSecretRef",
            ),
        )
    )

    enabled: bool = False
    """Require a bearer token on every request."""
    token_secret_ref: SecretKeyRef | None = None
    """Secret key with the tokens, one per line: `client-id:token`, `[admin] client-id:token`
    (may read and delete any client's sessions) or a bare token. Each client sees only its
    own sessions; the file is re-read when the Secret changes."""


class AlertingSpec(_Model):
    """When the operator raises an alert about this Agent."""

    error_rate_threshold: float = Field(default=0.1, ge=0, le=1)
    """Fraction of requests failing (5xx or degraded) that raises an alert, 0..1."""
    window_seconds: int = Field(default=300, ge=10, le=86400)
    """Window over which the error rate is measured."""
    min_requests: int = Field(default=10, ge=1)
    """Requests needed in the window before the rate counts."""
    webhook_secret_ref: SecretKeyRef | None = None
    """Secret key with a webhook URL that gets one POST per incident and one on resolve."""


class EnvVar(_Model):
    """An extra environment variable for the agent container."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                f"!self.name.upperAscii().startsWith('{RESERVED_ENV_PREFIX}')",
                f"spec.env[].name must not start with {RESERVED_ENV_PREFIX} "
                "(the operator sets the runtime's settings)",
                ".name",
            ),
        )
    )

    name: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """Variable name; not AGENTRY_* in any case, which the operator sets."""
    value: str = ""
    """Literal value."""

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name.upper().startswith(RESERVED_ENV_PREFIX):
            raise ValueError(f"must not start with {RESERVED_ENV_PREFIX} (the operator sets it)")
        return name


class SessionsSpec(_Model):
    """Limits on the memory each replica keeps; a request past one is refused, naming it."""

    max_turns: int = Field(default=1000, ge=0)
    """Turns one session may hold; more are refused with 409. 0: no limit."""
    max_session_bytes: int = Field(default=4 * 1024 * 1024, ge=0)
    """UTF-8 bytes of one session's messages; a question past it is refused with 413.
    0: no limit."""
    max_sessions: int = Field(default=10_000, ge=0)
    """Sessions one replica holds; a new one beyond it is refused with 507. 0: no limit."""
    max_state_bytes: int = Field(default=256 * 1024 * 1024, ge=0)
    """UTF-8 bytes of all sessions on one replica; beyond it new turns get 507. 0: no limit."""
    idle_timeout_seconds: int = Field(default=0, ge=0)
    """Sessions idle this long are erased as by DELETE. 0: kept until deleted."""


class ConfigMapKeyRef(_Model):
    """A key of a ConfigMap in the Agent's namespace."""

    name: str = Field(min_length=1, max_length=253)
    """Name of the ConfigMap."""
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    """Key inside the ConfigMap."""


class InstructionsSource(_Model):
    """Where the instructions come from when they are not inline."""

    config_map_key_ref: ConfigMapKeyRef
    """A ConfigMap key holding the instructions; edits reach the pods without a restart
    (the kubelet refreshes the mounted file within about a minute)."""


class SkillSpec(_Model):
    """One thing the agent does, as its A2A agent card lists it."""

    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    """Stable identifier of the skill."""
    name: str = Field(min_length=1, max_length=256)
    """Human-readable name."""
    description: str = Field(default="", max_length=2048)
    """What the skill does, for clients choosing an agent."""
    tags: list[str] = Field(default_factory=list, max_length=32)
    """Keywords."""


class ResourcesSpec(_Model):
    """Compute resources of the agent container."""

    requests: dict[str, Quantity] | None = None
    """Minimum resources, e.g. {cpu: 100m, memory: 128Mi}; each a Kubernetes quantity."""
    limits: dict[str, Quantity] | None = None
    """Maximum resources; each a Kubernetes quantity."""


# Kubernetes objects passed through to the pod template as they are: the API server
# validates them when the StatefulSet is written, and a typed copy here would lag behind it.
_PASSTHROUGH: JsonDict = {"x-kubernetes-preserve-unknown-fields": True}
PassThrough = Annotated[dict[str, Any], WithJsonSchema({"type": "object", **_PASSTHROUGH})]


class Toleration(_Model):
    """A toleration of the agent pods, as in a Pod's spec.tolerations."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                "!has(self.operator) || self.operator != 'Exists' || !has(self.value)",
                "spec.scheduling.tolerations[].value must be empty when operator is Exists",
                ".value",
            ),
        )
    )

    key: str | None = Field(default=None, max_length=316)
    """Taint key; empty with operator Exists tolerates every taint."""
    operator: Literal["Exists", "Equal"] | None = None
    """Exists or Equal (the default)."""
    value: str | None = Field(default=None, max_length=63)
    """Taint value for operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to match; empty matches all."""
    toleration_seconds: int | None = Field(default=None, ge=0)
    """How long a NoExecute taint is tolerated before the pod is evicted."""


class TopologySpreadConstraint(_Model):
    """A topologySpreadConstraint of the agent pods, as in a Pod's spec. Without a
    labelSelector it counts this Agent's pods."""

    max_skew: int = Field(default=1, ge=1)
    """Largest allowed difference in pod count between two domains."""
    topology_key: str = Field(min_length=1, max_length=316)
    """Node label whose values are the domains, e.g. topology.kubernetes.io/zone."""
    when_unsatisfiable: WhenUnsatisfiable = "ScheduleAnyway"
    """DoNotSchedule keeps a pod pending rather than skew more; ScheduleAnyway only prefers."""
    label_selector: dict[str, Any] | None = Field(default=None, json_schema_extra=_PASSTHROUGH)
    """Pods counted in each domain; unset: this Agent's pods."""
    min_domains: int | None = Field(default=None, ge=1)
    """Domains that must exist before DoNotSchedule counts a missing one as zero pods."""
    match_label_keys: list[str] | None = None
    """Pod label keys whose values narrow the counted pods (e.g. controller-revision-hash)."""


class SchedulingSpec(_Model):
    """Where the agent pods run and how replicas spread over nodes and zones."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                "!has(self.affinity) || self.affinity.all(k, k in "
                "['nodeAffinity', 'podAffinity', 'podAntiAffinity'])",
                "spec.scheduling.affinity may hold only nodeAffinity, podAffinity and "
                "podAntiAffinity",
                ".affinity",
            ),
        )
    )

    node_spread: WhenUnsatisfiable = "ScheduleAnyway"
    """Spreading of replicas over nodes (kubernetes.io/hostname, max skew 1): ScheduleAnyway
    prefers other nodes, DoNotSchedule leaves a replica pending rather than share a node
    while another node has fewer."""
    zone_spread: WhenUnsatisfiable | None = None
    """Also spread over zones (topology.kubernetes.io/zone, max skew 1); unset: no zone
    spreading."""
    topology_spread_constraints: list[TopologySpreadConstraint] | None = Field(
        default=None, max_length=8
    )
    """Your own constraints; when set they replace nodeSpread and zoneSpread."""
    node_selector: dict[str, str] | None = None
    """Node labels the pods require, as in a Pod's spec.nodeSelector."""
    tolerations: list[Toleration] | None = Field(default=None, max_length=32)
    """Taints the pods tolerate."""
    affinity: dict[str, PassThrough] | None = None
    """Node and pod affinity, as in a Pod's spec.affinity (nodeAffinity, podAffinity,
    podAntiAffinity); the API server checks their content when the StatefulSet is
    written. A map of objects, so the CEL rule can name an unknown key."""

    @field_validator("affinity")
    @classmethod
    def _affinity_kinds(
        cls, affinity: dict[str, dict[str, Any]] | None
    ) -> dict[str, dict[str, Any]] | None:
        unknown = sorted(set(affinity or {}) - AFFINITY_KINDS)
        if unknown:
            raise ValueError(
                f"unknown keys {', '.join(unknown)}; allowed: {', '.join(sorted(AFFINITY_KINDS))}"
            )
        return affinity


AFFINITY_KINDS = {"nodeAffinity", "podAffinity", "podAntiAffinity"}


def _refuse_repeats(what: str, keys: list[str]) -> None:
    """The keys of a list-map must be unique (the API server's map list says so too)."""
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"{what} must be unique, repeated: {', '.join(duplicates)}")


class NetworkSpec(_Model):
    """Who may reach the agent pods and what they may reach (one NetworkPolicy).

    Kubernetes enforces NetworkPolicy only through a CNI that implements it (Calico,
    Cilium, kindnet 0.24+, ...); on one that does not, the policy is stored and has no
    effect (docs/security.md, "Network policy").
    """

    policy: bool = True
    """Isolate the agent pods with a NetworkPolicy. Ingress: the agent port from
    ingressFrom only (and from the API server's addresses the operator is configured
    with, for kubectl agent invoke through its proxy). Egress: DNS, the API server, the
    model endpoint, the tool servers, the postgres port with that backend, and egress."""
    ingress_from: list[PassThrough] | None = Field(default=None, max_length=32)
    """Who may call the agent port, as NetworkPolicyPeer objects (podSelector,
    namespaceSelector, ipBlock). Unset: every pod of the Agent's namespace. Empty: no
    pod at all (kubelet probes are not subject to NetworkPolicy in most CNIs)."""
    egress: list[PassThrough] = Field(default_factory=list, max_length=32)
    """Further egress the agent pods need, as NetworkPolicyEgressRule objects (to,
    ports): what the operator cannot see in the spec, such as a proxy or a database."""


class AgentSpec(_Model):
    """The desired state of an Agent."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                "!has(self.rateLimit) || !has(self.rateLimit.clientKey) || "
                "self.rateLimit.clientKey != 'token' || "
                "(has(self.auth) && has(self.auth.enabled) && self.auth.enabled)",
                "spec.rateLimit.clientKey may be token only when spec.auth.enabled is true "
                "(without auth any Authorization header would pick its own bucket)",
                ".rateLimit.clientKey",
            ),
            (
                "!(has(self.instructions) && has(self.instructionsFrom))",
                "set spec.instructions or spec.instructionsFrom, not both",
                ".instructionsFrom",
            ),
            (
                "self.replicas <= 1 || "
                f"(has(self.state) && self.state.backend == '{SHARED_BACKEND}')",
                SINGLE_REPLICA_MESSAGE,
                ".replicas",
            ),
        )
    )

    replicas: int = Field(default=1, ge=0, le=100)
    """Number of agent pods."""
    suspend: bool = False
    """Stop the agent: final checkpoint, then zero pods. Resuming restores its memory."""
    environment: Environment = "development"
    """development, staging or production: picks log level, probe timings and strictness."""
    model: ModelSpec = Field(default_factory=ModelSpec, json_schema_extra={"default": {}})
    """The language model."""
    fallback: Fallback = "builtin"
    """When the model fails: builtin (local reply marked degraded) or reject (503)."""
    rate_limit: RateLimitSpec = Field(
        default_factory=RateLimitSpec, json_schema_extra={"default": {}}
    )
    """Request limits for the whole Agent; each replica enforces its share."""
    state: StateSpec = Field(default_factory=StateSpec, json_schema_extra={"default": {}})
    """Memory persistence."""
    auth: AuthSpec = Field(default_factory=AuthSpec, json_schema_extra={"default": {}})
    """Caller authentication."""
    alerting: AlertingSpec = Field(default_factory=AlertingSpec, json_schema_extra={"default": {}})
    """Error-rate alerting."""
    sessions: SessionsSpec = Field(default_factory=SessionsSpec, json_schema_extra={"default": {}})
    """Limits on session memory, per replica."""
    instructions: str | None = Field(default=None, min_length=1, max_length=65536)
    """The system prompt: sent to the model as the system message on every turn. Edits
    reach the running pods without a restart."""
    instructions_from: InstructionsSource | None = None
    """The instructions from a ConfigMap key instead of inline."""
    description: str = Field(default="", max_length=2048)
    """What the agent does: its A2A agent card and GET /v1/models show it."""
    skills: list[SkillSpec] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"]},
    )
    """The skills its A2A agent card lists, one per id."""
    resources: ResourcesSpec | None = None
    """Compute resources of the agent container; each request and limit left out takes
    the default of spec.environment (docs/operator.md, "Resource defaults")."""
    scheduling: SchedulingSpec = Field(
        default_factory=SchedulingSpec, json_schema_extra={"default": {}}
    )
    """Node and zone spreading of the replicas, node selection, tolerations, affinity."""
    network: NetworkSpec = Field(default_factory=NetworkSpec, json_schema_extra={"default": {}})
    """Network isolation of the agent pods (a NetworkPolicy, on by default)."""
    image: str | None = Field(default=None, min_length=1)
    """Agent image; empty uses the operator's default runtime image."""
    tools: list[ToolServerSpec] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """MCP servers whose tools the model may call, one per name (docs/tools.md)."""
    tool_policy: ToolPolicySpec = Field(
        default_factory=ToolPolicySpec, json_schema_extra={"default": {}}
    )
    """Limits of the tool loop."""
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """Extra environment variables, one per name (AGENTRY_* ones are set by the operator)."""

    @field_validator("env")
    @classmethod
    def _unique_env_names(cls, env: list[EnvVar]) -> list[EnvVar]:
        _refuse_repeats("names", [var.name for var in env])
        return env

    @field_validator("tools")
    @classmethod
    def _unique_tool_servers(cls, tools: list[ToolServerSpec]) -> list[ToolServerSpec]:
        _refuse_repeats("names", [tool.name for tool in tools])
        return tools

    @field_validator("skills")
    @classmethod
    def _unique_skill_ids(cls, skills: list[SkillSpec]) -> list[SkillSpec]:
        _refuse_repeats("ids", [skill.id for skill in skills])
        return skills

    @model_validator(mode="after")
    def _one_source_of_instructions(self) -> AgentSpec:
        if self.instructions is not None and self.instructions_from is not None:
            raise ValueError("set spec.instructions or spec.instructionsFrom, not both")
        return self

    @model_validator(mode="after")
    def _token_key_needs_auth(self) -> AgentSpec:
        if self.rate_limit.client_key == "token" and not self.auth.enabled:
            raise ValueError(
                "spec.rateLimit.clientKey: token needs spec.auth.enabled "
                "(without auth any Authorization header would pick its own bucket)"
            )
        return self

    @model_validator(mode="after")
    def _replicas_need_shared_state(self) -> AgentSpec:
        if self.replicas > 1 and self.state.backend != SHARED_BACKEND:
            raise ValueError(SINGLE_REPLICA_MESSAGE)
        return self

    @property
    def effective_client_key(self) -> ClientKey:
        """The key the runtime buckets clients by: the explicit one, else token with auth
        (a caller cannot choose its identity) and header without."""
        if self.rate_limit.client_key is not None:
            return self.rate_limit.client_key
        return "token" if self.auth.enabled else "header"


class Condition(_Model):
    """A condition in the Kubernetes API conventions."""

    type: str = Field(min_length=1, max_length=CONDITION_TYPE_MAX)
    """Ready, Progressing, Degraded or Alerting."""
    status: Literal["True", "False", "Unknown"]
    """Whether the condition holds."""
    reason: str = Field(min_length=1, max_length=CONDITION_REASON_MAX)
    """CamelCase reason of the last transition."""
    message: str = Field(default="", max_length=CONDITION_MESSAGE_MAX)
    """Human-readable detail."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The Agent generation this condition was computed for."""
    last_transition_time: str = Field(json_schema_extra={"format": "date-time"})
    """When status last changed, RFC 3339."""


class Health(_Model):
    """Worst health over the replicas, per component: ok or failed: <reason>."""

    state: str = "unknown"
    """State store."""
    model: str = "unknown"
    """Model provider."""
    disk: str = "unknown"
    """Disk space."""
    encryption: str = "unknown"
    """Encryption self-test."""
    tools: str = "unknown"
    """Tool servers: ok, none, or the servers that cannot be reached."""


class MetricsSummary(_Model):
    """Counters summed over the replicas since they started."""

    requests: int = 0
    """Requests served."""
    throttled: int = 0
    """Requests answered 429."""
    errors: int = 0
    """Requests answered 5xx or degraded."""
    degraded: int = 0
    """Replies from the fallback."""
    error_rate: float = 0.0
    """errors / requests over the alerting window."""
    p95_latency_ms: float = 0.0
    """Worst p95 latency over the replicas."""
    input_tokens: int = 0
    """Model input tokens of the turns served."""
    output_tokens: int = 0
    """Model output tokens of the turns served."""
    tokens: int = 0
    """Input plus output tokens (the TOKENS printer column)."""
    tool_calls: int = 0
    """Tool calls made."""


class CheckpointInfo(_Model):
    """The newest checkpoint over the replicas."""

    time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    """When it was written, RFC 3339."""
    generation: int = 0
    """Checkpoint generation."""
    bytes: int = 0
    """Size of the ciphertext."""
    key_id: str = ""
    """Key that encrypted it."""


class AgentStatus(_Model):
    """The observed state of an Agent, written by the operator."""

    phase: Phase = "Pending"
    """Pending, Running, Degraded, Suspended or Failed."""
    observed_generation: int = 0
    """The spec generation the operator last reconciled."""
    replicas: int = 0
    """Current pods."""
    ready_replicas: int = 0
    """Ready pods."""
    ready: str = "0/0"
    """Ready/desired, for the printer column."""
    selector: str = ""
    """Label selector of the pods (scale subresource)."""
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """Ready, Progressing, Degraded, Alerting; one of each type."""
    health: Health | None = None
    """Worst health over the replicas."""
    metrics: MetricsSummary | None = None
    """Summed counters."""
    last_checkpoint: CheckpointInfo | None = None
    """Newest checkpoint."""
    endpoint: str = ""
    """In-cluster URL of the agent's Service."""
    stale_heartbeats: list[str] = Field(default_factory=list, max_length=100)
    """Pods that should run whose heartbeat is older than the operator's
    heartbeatStaleSeconds: cut off from the API server, or hung (Degraded says so too)."""


def field_errors(exc: ValidationError) -> str:
    """Each error on one line part, led by its field path as on the wire
    (`spec.env[0].name: ...`), so a status message tells the user what to fix."""
    parts = []
    for error in exc.errors(include_url=False):
        path = ""
        for item in error["loc"]:
            if isinstance(item, int):
                path += f"[{item}]"
            else:
                path += f".{item}" if path else str(item)
        message = str(error["msg"]).removeprefix("Value error, ")
        # A rule across fields (clientKey and auth) names its own field in its message.
        parts.append(message if message.startswith("spec.") else f"{path}: {message}")
    return "; ".join(parts)


class AgentMeta(_Model):
    """The metadata the operator needs."""

    name: str
    namespace: str = "default"
    uid: str = ""
    generation: int = 0
    annotations: dict[str, str] = Field(default_factory=dict)


class Agent(_Model):
    """An Agent as the handlers see it: metadata plus the validated spec."""

    metadata: AgentMeta
    spec: AgentSpec = Field(default_factory=AgentSpec)

    @classmethod
    def from_body(cls, body: Any) -> Agent:
        """Validate a raw Kubernetes body (dict or kopf.Body)."""
        return cls.model_validate(
            {"metadata": dict(body.get("metadata", {})), "spec": dict(body.get("spec") or {})}
        )

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace
