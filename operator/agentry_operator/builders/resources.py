"""The agent container's resources: the environment's defaults, overridden per field.

Called by `workload._container`. Every pod gets requests, so the scheduler places it by
what it uses and it is not the first one evicted under node pressure; staging and
production also get a memory limit, so a runaway pod cannot take a node's memory. There
is no CPU limit by default: CPU is compressible (a busy pod is slowed, never killed),
and a CFS quota throttles a latency-bound server in 100 ms periods even when the node
has idle cores, so requests (a guaranteed share under contention) are the better tool.
docs/operator.md ("Resource defaults") has the table and the reasoning.

A user's `spec.resources` replaces the default of each field it names and keeps the
rest. The defaults bend so that the pair stays valid: a default request never exceeds a
limit the user set (Kubernetes refuses request > limit), and a default limit never falls
below a request the user set.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from agentry_operator.builders.profiles import profile_for
from agentry_operator.models import Agent, Quantity

MIB = 1024 * 1024

CHECKPOINT_FACTOR = 5
"""Peak RSS grows by about 5x the session state while a checkpoint is sealed (JSON,
envelope and ciphertext side by side): +323 MiB for 64 MiB of state, +577 MiB for 128 MiB
(docs/benchmarks.md, "Agent pod footprint"). The memory limit leaves room for it, so the
runtime's own refusal at sessions.maxStateBytes (507) comes before the OOM killer."""

UNBOUNDED_STATE_BYTES = 256 * MIB
"""The state the limit is sized for when sessions.maxStateBytes is 0 (no bound): the
default bound. Set resources.limits.memory yourself if you lift the bound."""

EPHEMERAL_REQUEST = "64Mi"
"""What a busy pod holds on the node's disk: its container log, which the kubelet rotates
at 10 MiB x 5 files (272 bytes a request at log level info); the runtime writes nothing
to /tmp (0 bytes after 27,670 requests)."""

EPHEMERAL_LIMIT = "128Mi"
"""The log's 50 MiB rotation ceiling and room to spare, plus the 64 MiB /tmp emptyDir
(whose sizeLimit evicts on its own)."""


# Suffix → multiplier of a Kubernetes quantity (k8s.io/apimachinery resource.Quantity).
_SUFFIXES = {
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
    **{s: Decimal(1000) ** (i + 1) for i, s in enumerate(("k", "M", "G", "T", "P", "E"))},
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
}


def _amount(value: Quantity) -> Decimal:
    """A quantity as a number, parsed as the API server does (`128Mi`, `0.5`, `250m`,
    `1e3`). Parsed here rather than with `kubernetes.utils`: importing that loads the
    whole synchronous client, tens of MB the operator's memory would carry for nothing.
    The models have checked the form already (QUANTITY_PATTERN)."""
    text = str(value)
    for suffix in (text[-2:], text[-1:]):
        if suffix in _SUFFIXES and len(text) > len(suffix):
            return Decimal(text[: -len(suffix)]) * _SUFFIXES[suffix]
    return Decimal(text)


def memory_limit(agent: Agent) -> str:
    """The memory request plus room for sealing a checkpoint of the largest state the
    runtime will hold (sessions.maxStateBytes), in whole MiB."""
    state = agent.spec.sessions.max_state_bytes or UNBOUNDED_STATE_BYTES
    request = int(_amount(profile_for(agent.spec.environment).memory_request))
    total = request + CHECKPOINT_FACTOR * state
    return f"{-(-total // MIB)}Mi"


def defaults(agent: Agent) -> dict[str, dict[str, str]]:
    """The environment's requests and limits, before the user's spec.resources."""
    profile = profile_for(agent.spec.environment)
    requests = {
        "cpu": profile.cpu_request,
        "memory": profile.memory_request,
        "ephemeral-storage": EPHEMERAL_REQUEST,
    }
    limits = {"ephemeral-storage": EPHEMERAL_LIMIT}
    if profile.memory_limit:
        limits["memory"] = memory_limit(agent)
    return {"requests": requests, "limits": limits}


def resources(agent: Agent) -> dict[str, dict[str, Any]]:
    """The container's `resources`: defaults, with each field the user set taking over."""
    base = defaults(agent)
    spec = agent.spec.resources
    asked_requests = dict(spec.requests or {}) if spec else {}
    asked_limits = dict(spec.limits or {}) if spec else {}
    requests: dict[str, Any] = {}
    for name, value in base["requests"].items():
        limit = asked_limits.get(name)
        # Only a limit given: Kubernetes itself would take the limit as the request.
        fits = limit is None or _amount(value) <= _amount(limit)
        requests[name] = value if fits else limit
    limits: dict[str, Any] = {}
    for name, value in base["limits"].items():
        request = asked_requests.get(name)
        limits[name] = value if request is None or _amount(request) <= _amount(value) else request
    requests.update(asked_requests)
    limits.update(asked_limits)
    return {"requests": requests, "limits": limits}
