"""Probes: their settings, the threshold logic that turns results into a state, and the
three ways to run one (httpGet, tcpSocket, exec).

The state logic and the cadence are pure (tests drive them with made-up results and
times); `run_probe` does the I/O from the node's network namespace to the pod IP.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import aiohttp

Json = dict[str, Any]

# Before a container's first readiness success the node probes at least this often, so a
# pod turns Ready soon after its server listens (the kubelet waits a full period).
EAGER_READINESS_SECONDS = 0.5


@dataclass(frozen=True)
class ProbeSpec:
    action: str  # "http", "tcp" or "exec"
    port: int = 0
    path: str = "/"
    scheme: str = "HTTP"
    host: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    command: tuple[str, ...] = ()
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3


def _port(value: Any, container: Json) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    for p in container.get("ports") or []:
        if p.get("name") == value:
            return int(p["containerPort"])
    raise ValueError(f"probe names port {value!r} that the container does not declare")


def parse_probe(probe: Json, container: Json) -> ProbeSpec:
    """A probe from the pod spec, defaults as in the API (period 10 s, timeout 1 s, 3 fails)."""
    common: dict[str, Any] = {
        "initial_delay": float(probe.get("initialDelaySeconds", 0)),
        "period": float(probe.get("periodSeconds", 10)),
        "timeout": float(probe.get("timeoutSeconds", 1)),
        "success_threshold": int(probe.get("successThreshold", 1)),
        "failure_threshold": int(probe.get("failureThreshold", 3)),
    }
    if "httpGet" in probe:
        h = probe["httpGet"]
        headers = tuple((x["name"], x["value"]) for x in h.get("httpHeaders") or [])
        return ProbeSpec(
            "http",
            port=_port(h["port"], container),
            path=h.get("path", "/"),
            scheme=h.get("scheme", "HTTP"),
            host=h.get("host", ""),
            headers=headers,
            **common,
        )
    if "tcpSocket" in probe:
        t = probe["tcpSocket"]
        return ProbeSpec("tcp", port=_port(t["port"], container), host=t.get("host", ""), **common)
    if "exec" in probe:
        return ProbeSpec("exec", command=tuple(probe["exec"].get("command") or []), **common)
    raise ValueError("probe has no httpGet, tcpSocket or exec action")


@dataclass
class ProbeState:
    """Consecutive results against the thresholds; `result` None until decided."""

    spec: ProbeSpec
    result: bool | None = None
    successes: int = 0
    failures: int = 0
    runs: int = field(default=0)

    def record(self, ok: bool) -> bool:
        """Add one result; return whether `result` changed."""
        self.runs += 1
        before = self.result
        if ok:
            self.successes += 1
            self.failures = 0
            if self.successes >= self.spec.success_threshold:
                self.result = True
        else:
            self.failures += 1
            self.successes = 0
            if self.failures >= self.spec.failure_threshold:
                self.result = False
        return self.result != before


def next_delay(state: ProbeState, role: str) -> float:
    """Seconds until the next run: the initial delay first, then the period (readiness
    probes more eagerly until their first success)."""
    spec = state.spec
    if state.runs == 0:
        return spec.initial_delay
    if role == "readiness" and state.result is not True:
        return min(spec.period, EAGER_READINESS_SECONDS)
    return spec.period


async def run_probe(
    spec: ProbeSpec, pod_ip: str, pid: int | None, session: aiohttp.ClientSession
) -> bool:
    """Run a probe once; any error or timeout counts as a failure."""
    host = spec.host or pod_ip
    try:
        if spec.action == "http":
            url = f"{spec.scheme.lower()}://{host}:{spec.port}{spec.path}"
            timeout = aiohttp.ClientTimeout(total=spec.timeout)
            async with session.get(
                url, headers=dict(spec.headers), timeout=timeout, ssl=False
            ) as resp:
                return 200 <= resp.status < 400
        if spec.action == "tcp":
            conn = asyncio.open_connection(host, spec.port)
            _, writer = await asyncio.wait_for(conn, spec.timeout)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True
        if spec.action == "exec" and pid is not None:
            proc = await asyncio.create_subprocess_exec(
                "nsenter",
                "-t",
                str(pid),
                "-m",
                "-n",
                "-u",
                "--",
                *spec.command,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                return await asyncio.wait_for(proc.wait(), spec.timeout) == 0
            except TimeoutError:
                proc.kill()
                await proc.wait()
                return False
    except (OSError, TimeoutError, aiohttp.ClientError):
        return False
    return False
