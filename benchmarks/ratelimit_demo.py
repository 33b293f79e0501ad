"""Before/after rate-limiting demonstration: the same overload against two agents.

``python -m benchmarks.ratelimit_demo`` starts two real runtimes (``python -m
agent_runtime serve``) on free loopback ports, one after the other, each with the
environment the operator writes into a one-replica Agent's ConfigMap
(``agentry_operator.builders.runtime_environment``): the first Agent has no
``rateLimit``, the second has one. Only what a pod gets from its mounts and network is
replaced: loopback address, a temporary state directory and key ring, no heartbeat Lease.

The load is open-loop: request ``i`` is due at ``i / rate`` seconds whatever happened to
the earlier ones, and its latency is measured from that due time, so a slow server cannot
slow the client down and hide its own queueing (coordinated omission). Requests rotate
over several noisy ``X-Client-ID`` values and one quiet client. ``--cluster`` runs the
same against two Agents applied on the local cluster (operator installed) instead.
Results (counts by status, throughput, latency percentiles of admitted requests, the
runtime's peak RSS and CPU time, and whether every 429 carries ``Retry-After``,
``RateLimit`` and ``RateLimit-Policy``) are printed and written between markers in
docs/rate-limiting.md, so a rerun updates the document.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import shlex
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.report import machine

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "rate-limiting.md"
MARKER = "ratelimit-demo"
LIMIT_HEADERS = ("Retry-After", "RateLimit", "RateLimit-Policy")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- pure helpers ---------------------------------------------------------------------


def open_loop_schedule(rate: float, seconds: float) -> list[float]:
    """Due times (seconds from the start) of an open-loop load: evenly ``1 / rate`` apart."""
    if rate <= 0 or seconds <= 0:
        return []
    count = math.floor(rate * seconds + 1e-9)
    return [i / rate for i in range(count)]


QUIET = "quiet"


def client_for(i: int, clients: int, quiet_every: int) -> str:
    """The ``X-Client-ID`` of request ``i``: every ``quiet_every``-th is the quiet client
    (0: none), the others rotate over ``clients`` noisy ones."""
    if quiet_every > 0 and i % quiet_every == 0:
        return QUIET
    return f"noisy-{i % clients}"


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0 < q <= 100); ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def limit_headers_present(headers: dict[str, str]) -> bool:
    """Whether a 429 carries a whole-second ``Retry-After`` >= 1 and both IETF fields."""
    retry = headers.get("Retry-After", "")
    return (
        retry.isdigit()
        and int(retry) >= 1
        and bool(headers.get("RateLimit"))
        and bool(headers.get("RateLimit-Policy"))
    )


@dataclass(frozen=True)
class Outcome:
    """One request: its status (0 for a transport error or timeout) and timings."""

    client: str
    status: int
    latency: float  # seconds from the due time to the end of the response
    lag: float  # seconds the client sent it after its due time
    finished: float  # seconds from the start of the run
    headers_ok: bool  # for a 429: Retry-After, RateLimit and RateLimit-Policy present


@dataclass
class RuntimeUsage:
    """What the runtime process used, from /proc."""

    rss_ready_mb: float = 0.0
    peak_rss_mb: float = 0.0
    cpu_seconds: float = 0.0


@dataclass
class AgentResult:
    """The figures of one agent under the overload."""

    name: str
    settings: dict[str, str]
    offered_rps: float
    seconds: float
    outcomes: list[Outcome]
    usage: RuntimeUsage | None = None  # None when the process could not be found
    server_throttled: int | None = None  # agentry_runtime_throttled_total, a cross-check
    sample_refusal: str = ""  # status line, limit fields and body of one 429

    def quiet_admitted(self) -> tuple[int, int]:
        """(200s, requests) of the quiet client."""
        quiet = [o for o in self.outcomes if o.client == QUIET]
        return sum(1 for o in quiet if o.status == 200), len(quiet)

    def count(self, status: int) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def other(self) -> int:
        return sum(1 for o in self.outcomes if o.status not in (200, 429, 503))

    @property
    def span(self) -> float:
        """Wall time from the first due time to the last response, at least the load window."""
        last = max((o.finished for o in self.outcomes), default=0.0)
        return max(self.seconds, last)

    @property
    def achieved_rps(self) -> float:
        return sum(1 for o in self.outcomes if o.status) / self.span

    @property
    def admitted_rps(self) -> float:
        return self.count(200) / self.span

    def latency_ms(self, status: int, q: float) -> float | None:
        value = percentile([o.latency for o in self.outcomes if o.status == status], q)
        return None if value is None else value * 1000

    @property
    def lag_p99_ms(self) -> float:
        return (percentile([o.lag for o in self.outcomes], 99) or 0.0) * 1000

    @property
    def throttled_with_headers(self) -> tuple[int, int]:
        refused = [o for o in self.outcomes if o.status == 429]
        return sum(1 for o in refused if o.headers_ok), len(refused)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def render_table(results: Sequence[AgentResult]) -> str:
    """The results as a Markdown table: one row per figure, one column per agent."""
    rows: list[tuple[str, list[str]]] = [
        ("offered load, req/s (open loop)", [f"{r.offered_rps:.0f}" for r in results]),
        ("requests sent", [str(len(r.outcomes)) for r in results]),
        ("achieved throughput, responses/s", [f"{r.achieved_rps:.1f}" for r in results]),
        ("admitted (200) throughput, req/s", [f"{r.admitted_rps:.1f}" for r in results]),
        ("200 OK", [str(r.count(200)) for r in results]),
        ("429 Too Many Requests", [str(r.count(429)) for r in results]),
        ("503 Service Unavailable", [str(r.count(503)) for r in results]),
        ("other errors (5xx, timeouts, resets)", [str(r.other) for r in results]),
    ]
    for q in (50, 95, 99):
        rows.append((f"latency of 200s p{q}, ms", [_ms(r.latency_ms(200, q)) for r in results]))
    rows += [
        ("latency of 429s p50 / p99, ms", [_pair(r, 429) for r in results]),
        (
            "429s with Retry-After + RateLimit + RateLimit-Policy",
            [_headers_cell(r) for r in results],
        ),
        (
            "runtime's own throttled counter",
            [("n/a" if r.server_throttled is None else str(r.server_throttled)) for r in results],
        ),
        ("quiet client: 200s of requests sent", [_quiet_cell(r) for r in results]),
        ("runtime RSS before the load, MB", [_usage(r, "rss_ready_mb", 0) for r in results]),
        ("runtime peak RSS (VmHWM), MB", [_usage(r, "peak_rss_mb", 0) for r in results]),
        ("runtime CPU time during the load, s", [_usage(r, "cpu_seconds", 1) for r in results]),
        ("client send lag p99, ms", [f"{r.lag_p99_ms:.1f}" for r in results]),
    ]
    head = "| figure | " + " | ".join(r.name for r in results) + " |"
    rule = "|---|" + "---|" * len(results)
    body = "\n".join(f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows)
    return f"{head}\n{rule}\n{body}"


def _usage(result: AgentResult, name: str, digits: int) -> str:
    if result.usage is None:
        return "n/a"
    return f"{getattr(result.usage, name):.{digits}f}"


def _pair(result: AgentResult, status: int) -> str:
    if not result.count(status):
        return "n/a"
    return f"{_ms(result.latency_ms(status, 50))} / {_ms(result.latency_ms(status, 99))}"


def _quiet_cell(result: AgentResult) -> str:
    admitted, sent = result.quiet_admitted()
    return "n/a" if sent == 0 else f"{admitted} of {sent}"


def _headers_cell(result: AgentResult) -> str:
    good, total = result.throttled_with_headers
    return "n/a" if total == 0 else f"{good} of {total}"


def render_reading(unlimited: AgentResult, limited: AgentResult, limit_rps: float) -> str:
    """Two sentences of what the run shows, with its own numbers."""
    refused = limited.count(429) / max(1, len(limited.outcomes))
    good, total = limited.throttled_with_headers
    p99_before = _ms(unlimited.latency_ms(200, 99))
    p99_after = _ms(limited.latency_ms(200, 99))
    return (
        f"Without `rateLimit` the agent admitted whatever it could: "
        f"{unlimited.admitted_rps:.0f} req/s admitted, p99 {p99_before} ms, "
        f"{unlimited.count(503)} shed with 503, {unlimited.other} other errors, "
        f"{_usage(unlimited, 'cpu_seconds', 1)} s of CPU. "
        f"With `rateLimit` ({limit_rps:g} req/s) it admitted {limited.admitted_rps:.1f} req/s "
        f"({limited.admitted_rps / limit_rps:.0%} of the limit; the surplus over 100% is the "
        f"initial burst), refused {refused:.0%} with 429 ({good} of {total} carrying "
        f"`Retry-After`, `RateLimit` and `RateLimit-Policy`), shed {limited.count(503)} with "
        f"503, answered admitted requests with p99 {p99_after} ms and used "
        f"{_usage(limited, 'cpu_seconds', 1)} s of CPU." + _quiet_reading(limited)
    )


def _quiet_reading(limited: AgentResult) -> str:
    admitted, sent = limited.quiet_admitted()
    if sent == 0:
        return ""
    return (
        f" The quiet client, far below its own bucket, still got only {admitted} of its "
        f"{sent} requests through: the replica bucket is shared first come, first served."
    )


def render_section(
    results: Sequence[AgentResult],
    *,
    heading: str = "## Results",
    command: str,
    date: str,
    machine_text: str,
    clients: int,
    quiet_rps: float,
    limit_rps: float,
    total_seconds: float,
) -> str:
    """The generated part of docs/rate-limiting.md."""
    unlimited, limited = results[0], results[-1]
    quiet = (
        f"a quiet client `{QUIET}` sends about {quiet_rps:g} req/s of it"
        if quiet_rps > 0
        else "no quiet client"
    )
    sample = (
        f"\nThe first 429 of the run:\n\n```\n{limited.sample_refusal}\n```\n"
        if limited.sample_refusal
        else ""
    )
    settings = "\n".join(
        f"| `{key}` | `{unlimited.settings.get(key, '')}` | `{limited.settings.get(key, '')}` |"
        for key in sorted(set(unlimited.settings) | set(limited.settings))
        if "RATE_LIMIT" in key or "MAX_CONCURRENT" in key
    )
    return f"""{heading}

Command: `{command}`, {date}, total {total_seconds:.0f} s.
{machine_text}
Offered load: {unlimited.offered_rps:.0f} req/s open loop for {unlimited.seconds:g} s, one agent
at a time; {quiet}, the rest rotates over {clients} noisy `X-Client-ID` values.

| runtime setting (from the operator) | without `rateLimit` | with `rateLimit` |
|---|---|---|
{settings}

{render_table(results)}

{render_reading(unlimited, limited, limit_rps)}
{sample}"""


def replace_section(text: str, name: str, body: str) -> str:
    """``text`` with the block between ``<!-- name:start -->`` and ``:end`` set to ``body``.

    Everything outside the markers is kept; without markers the block is appended.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        return before + block + after
    return text.rstrip() + "\n\n" + block + "\n"


def describe_refusal(headers: dict[str, str], body: bytes) -> str:
    """A 429 as an HTTP excerpt: status line, the limit fields, the body."""
    lines = ["HTTP/1.1 429 Too Many Requests"]
    lines += [f"{name}: {headers[name]}" for name in LIMIT_HEADERS if name in headers]
    return "\n".join([*lines, "", body.decode("utf-8", "replace").strip()])


def parse_throttled(metrics_text: str) -> int:
    """The sum of ``agentry_runtime_throttled_total`` over its labels in Prometheus text."""
    total = 0.0
    for line in metrics_text.splitlines():
        match = re.match(r"agentry_runtime_throttled_total(\{[^}]*\})?\s+(\S+)", line)
        if match:
            total += float(match.group(2))
    return int(total)


# --- the agents -----------------------------------------------------------------------


def agent_environment(
    name: str, *, rps: float, burst: int, clients_key: str = "header"
) -> tuple[dict[str, str], dict[str, str]]:
    """(AGENTRY_* variables, key Secret data) the operator gives a one-replica Agent; the
    limits it mounts as a file become the equivalent fixed variables."""
    from agentry_operator.builders import build_key_secret, replica_limits, runtime_environment
    from agentry_operator.models import Agent

    spec: dict[str, object] = {
        "replicas": 1,
        "environment": "development",
        "model": {"provider": "builtin"},
        "state": {"backend": "pvc"},
    }
    if rps > 0:
        spec["rateLimit"] = {"requestsPerSecond": rps, "burst": burst, "clientKey": clients_key}
    agent = Agent.from_body({"metadata": {"name": name, "namespace": "default"}, "spec": spec})
    keys: dict[str, str] = build_key_secret(agent)["stringData"]
    env = runtime_environment(agent)
    env.pop("AGENTRY_LIMITS_FILE", None)
    env.update({f"AGENTRY_{k}": v for k, v in limits_settings(replica_limits(agent)).items()})
    return env, keys


def limits_settings(limits: Mapping[str, float | int]) -> dict[str, str]:
    """The operator's limits.json as the runtime's fixed RATE_LIMIT_* settings."""
    names = {
        "requestsPerSecond": "RATE_LIMIT_RPS",
        "burst": "RATE_LIMIT_BURST",
        "perClientRequestsPerSecond": "RATE_LIMIT_CLIENT_RPS",
        "perClientBurst": "RATE_LIMIT_CLIENT_BURST",
    }
    return {names[key]: f"{value:g}" for key, value in limits.items() if key in names}


def local_overrides(env: dict[str, str], port: int, home: Path, replica: str) -> dict[str, str]:
    """Replace what a pod gets from its network, mounts and Lease with local equivalents."""
    env = dict(env)
    env.update(
        {
            "AGENTRY_HOST": "127.0.0.1",
            "AGENTRY_PORT": str(port),
            "AGENTRY_REPLICA": replica,
            "AGENTRY_STATE_DIR": str(home / "state"),
            "AGENTRY_KEYS_DIR": str(home / "keys"),
            "AGENTRY_LOG_DIR": str(home),
            "AGENTRY_HEARTBEAT": "none",
        }
    )
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_proc(pid: int) -> tuple[float, float, float]:
    """(VmRSS MB, VmHWM MB, user + system CPU seconds) of a running process."""
    status = Path(f"/proc/{pid}/status").read_text()
    values = {
        line.split(":")[0]: int(line.split()[1])
        for line in status.splitlines()
        if line.startswith(("VmRSS", "VmHWM"))
    }
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    return values["VmRSS"] / 1024, values["VmHWM"] / 1024, cpu


async def wait_ready(url: str, process: asyncio.subprocess.Process, within: float = 30) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"runtime exited with {process.returncode} before ready")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"runtime at {url} never became ready")


# --- the load -------------------------------------------------------------------------


async def drive(
    url: str,
    refusals: list[str],
    *,
    rate: float,
    seconds: float,
    clients: int,
    quiet_rps: float = 0.0,
    sessions_per_client: int = 20,
    give_up_after: float = 10.0,
) -> list[Outcome]:
    """Send the open-loop load to ``url`` and return one outcome per request.

    The first 429 is described into ``refusals`` for the document.
    """
    loop = asyncio.get_running_loop()
    due = open_loop_schedule(rate, seconds)
    quiet_every = round(rate / quiet_rps) if quiet_rps > 0 else 0
    outcomes: list[Outcome] = []
    connector = aiohttp.TCPConnector(limit=2048)
    client_timeout = aiohttp.ClientTimeout(total=give_up_after)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as http:
        start = loop.time() + 0.2

        async def one(i: int, due_at: float) -> None:
            client = client_for(i, clients, quiet_every)
            session = f"{client}-s{(i // clients) % sessions_per_client}"
            sent = loop.time()
            status, ok = 0, False
            try:
                async with http.post(
                    f"{url}/v1/sessions/{session}/messages",
                    json={"content": "what is 6*7"},
                    headers={"X-Client-ID": client},
                ) as response:
                    body = await response.read()
                    status = response.status
                    if status == 429:
                        ok = limit_headers_present(dict(response.headers))
                        if not refusals:
                            refusals.append(describe_refusal(dict(response.headers), body))
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            done = loop.time()
            outcomes.append(Outcome(client, status, done - due_at, sent - due_at, done - start, ok))

        tasks = []
        for i, offset in enumerate(due):
            due_at = start + offset
            delay = due_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due_at)))
        await asyncio.gather(*tasks)
    return outcomes


@dataclass(frozen=True)
class Target:
    """A running agent replica to overload: its URL, its process (when known), settings."""

    url: str
    pid: int | None
    settings: dict[str, str]


@contextlib.asynccontextmanager
async def local_agent(name: str, *, rps: float, burst: int) -> AsyncIterator[Target]:
    """A runtime process on a free loopback port with the operator's settings for ``name``."""
    with tempfile.TemporaryDirectory(prefix="agentry-ratelimit-") as tmp:
        home = Path(tmp)
        env, keys = agent_environment(name, rps=rps, burst=burst)
        (home / "keys").mkdir()
        for key, value in keys.items():
            (home / "keys" / key).write_text(value)
        port = free_port()
        process_env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTRY_")}
        process_env.update(local_overrides(env, port, home, f"{name}-0"))
        url = f"http://127.0.0.1:{port}"
        with (home / "runtime.log").open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "agent_runtime",
                "serve",
                env=process_env,
                stdout=log,
                stderr=log,
            )
            try:
                await wait_ready(url, process)
                settings = {k.removeprefix("AGENTRY_"): v for k, v in env.items()}
                yield Target(url, process.pid, settings)
            finally:
                if process.returncode is None:
                    process.terminate()
                await process.wait()


async def measure(
    label: str,
    target: Target,
    *,
    offered: float,
    seconds: float,
    clients: int,
    quiet_rps: float,
) -> AgentResult:
    """Overload one running agent and collect its figures."""
    before = read_proc(target.pid) if target.pid else None
    refusals: list[str] = []
    outcomes = await drive(
        target.url, refusals, rate=offered, seconds=seconds, clients=clients, quiet_rps=quiet_rps
    )
    after = read_proc(target.pid) if target.pid else None
    usage = None
    if before is not None and after is not None:
        usage = RuntimeUsage(before[0], after[1], after[2] - before[2])
    async with aiohttp.ClientSession() as http, http.get(f"{target.url}/metrics") as response:
        throttled = parse_throttled(await response.text())
    sample = refusals[0] if refusals else ""
    return AgentResult(label, target.settings, offered, seconds, outcomes, usage, throttled, sample)


# --- optional: two Agents on the local cluster ------------------------------------------


def agent_manifest(name: str, namespace: str, *, rps: float, burst: int) -> dict[str, Any]:
    """A one-replica Agent like the local ones: builtin model, pvc state, optional limit."""
    spec: dict[str, object] = {
        "replicas": 1,
        "environment": "development",
        "model": {"provider": "builtin"},
        "state": {"backend": "pvc", "retainOnDelete": False},
    }
    if rps > 0:
        spec["rateLimit"] = {"requestsPerSecond": rps, "burst": burst, "clientKey": "header"}
    return {
        "apiVersion": "agentry.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


async def kubectl(binary: str, *args: str, stdin: str | None = None) -> str:
    """Run kubectl (KUBECONFIG from the environment); raise with its message on failure."""
    process = await asyncio.create_subprocess_exec(
        binary,
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(stdin.encode() if stdin is not None else None)
    if process.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {err.decode().strip()}")
    return out.decode()


def find_runtime_pid(agent: str, namespace: str) -> int | None:
    """The pid of a pod's runtime on the process node, found by its AGENTRY_* environment."""
    wanted = {f"AGENTRY_AGENT_NAME={agent}".encode(), f"AGENTRY_NAMESPACE={namespace}".encode()}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = set((proc / "environ").read_bytes().split(b"\0"))
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if wanted <= environ and b"serve" in cmdline:
            return int(proc.name)
    return None


async def pod_ready(binary: str, namespace: str, pod: str, within: float = 180) -> str:
    """Wait until ``pod`` is Ready; return its IP."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(RuntimeError):
            body = json.loads(
                await kubectl(binary, "get", "pod", pod, "-n", namespace, "-o", "json")
            )
            status = body.get("status", {})
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions", [])
            )
            if ready and status.get("podIP"):
                return str(status["podIP"])
        await asyncio.sleep(1)
    raise RuntimeError(f"pod {namespace}/{pod} not Ready within {within:g} s")


@contextlib.asynccontextmanager
async def cluster_agents(
    binary: str, namespace: str, agents: Sequence[tuple[str, float, int]]
) -> AsyncIterator[dict[str, Target]]:
    """Apply one Agent per (name, rps, burst) in a fresh namespace; delete it afterwards."""
    namespace_body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    for _ in range(120):  # a previous run's namespace may still be terminating
        phase = await kubectl(
            binary,
            "get",
            "namespace",
            namespace,
            "--ignore-not-found",
            "-o",
            "jsonpath={.status.phase}",
        )
        if phase != "Terminating":
            break
        await asyncio.sleep(1)
    await kubectl(binary, "apply", "-f", "-", stdin=json.dumps(namespace_body))
    try:
        for name, rps, burst in agents:
            manifest = agent_manifest(name, namespace, rps=rps, burst=burst)
            await kubectl(binary, "apply", "-f", "-", stdin=json.dumps(manifest))
        targets = {}
        for name, _, _ in agents:
            ip = await pod_ready(binary, namespace, f"{name}-0")
            config = json.loads(
                await kubectl(
                    binary, "get", "configmap", f"{name}-config", "-n", namespace, "-o", "json"
                )
            )
            settings = {k.removeprefix("AGENTRY_"): v for k, v in config["data"].items()}
            limits = json.loads(
                await kubectl(
                    binary, "get", "configmap", f"{name}-limits", "-n", namespace, "-o", "json"
                )
            )
            settings.update(limits_settings(json.loads(limits["data"]["limits.json"])))
            pid = await asyncio.to_thread(find_runtime_pid, name, namespace)
            targets[name] = Target(f"http://{ip}:8080", pid, settings)
        yield targets
    finally:
        with contextlib.suppress(RuntimeError):
            await kubectl(binary, "delete", "namespace", namespace, "--wait=false")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ratelimit_demo",
        description="The same overload against an agent without and with rateLimit.",
    )
    parser.add_argument("--limit", type=float, default=50.0, help="Agent limit, req/s")
    parser.add_argument("--burst", type=int, default=50, help="Agent burst (>= limit)")
    parser.add_argument("--factor", type=float, default=10.0, help="offered load / limit")
    parser.add_argument("--seconds", type=float, default=20.0, help="load duration per agent")
    parser.add_argument("--clients", type=int, default=4, help="noisy X-Client-ID values")
    parser.add_argument(
        "--quiet-rps", type=float, default=5.0, help="a quiet client's share of the load (0: none)"
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="apply two Agents on the cluster of KUBECONFIG (operator installed) instead",
    )
    parser.add_argument("--namespace", default="ratelimit-demo", help="for --cluster; deleted")
    parser.add_argument("--no-write", action="store_true", help="print only, keep the doc")
    args = parser.parse_args(list(argv))
    if args.limit <= 0 or args.burst < args.limit or args.factor <= 0 or args.clients < 1:
        parser.error("need --limit > 0, --burst >= --limit, --factor > 0, --clients >= 1")
    if not 0 <= args.quiet_rps < args.limit * args.factor:
        parser.error("--quiet-rps must be >= 0 and below the offered load")
    if args.cluster and shutil.which("kubectl") is None:
        parser.error("--cluster needs kubectl on PATH and KUBECONFIG set")
    return args


AGENTS = (
    ("without `rateLimit`", "unlimited", False),
    ("with `rateLimit`", "limited", True),
)


async def overload_both(args: argparse.Namespace) -> list[AgentResult]:
    """The same overload against the agent without and then with ``rateLimit``."""
    offered = args.limit * args.factor
    specs = [(name, args.limit if on else 0.0, args.burst if on else 0) for _, name, on in AGENTS]
    load = {
        "offered": offered,
        "seconds": args.seconds,
        "clients": args.clients,
        "quiet_rps": args.quiet_rps,
    }
    results = []
    if args.cluster:
        binary = shutil.which("kubectl") or "kubectl"
        print(f"applying two Agents in namespace {args.namespace} ...", flush=True)
        async with cluster_agents(binary, args.namespace, specs) as targets:
            for label, name, _ in AGENTS:
                print(f"{offered:g} req/s for {args.seconds:g} s: {label} ...", flush=True)
                results.append(await measure(label, targets[name], **load))
        return results
    for (label, name, _), (_, rps, burst) in zip(AGENTS, specs, strict=True):
        print(f"{offered:g} req/s for {args.seconds:g} s: {label} ...", flush=True)
        async with local_agent(name, rps=rps, burst=burst) as target:
            results.append(await measure(label, target, **load))
    return results


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    load_before = Path("/proc/loadavg").read_text().split()[0]
    results = asyncio.run(overload_both(args))
    load_after = Path("/proc/loadavg").read_text().split()[0]
    command = ".venv/bin/python -m benchmarks.ratelimit_demo" + "".join(
        " " + shlex.quote(a) for a in argv if a != "--no-write"
    )
    section = render_section(
        results,
        heading="### Results on the local cluster" if args.cluster else "## Results",
        command=command,
        date=time.strftime("%Y-%m-%d"),
        machine_text=machine()
        + f"- load average (1 min) at the start / end of the run: {load_before} / {load_after}\n",
        clients=args.clients,
        quiet_rps=args.quiet_rps,
        limit_rps=args.limit,
        total_seconds=time.perf_counter() - started,
    )
    print(section)
    if not args.no_write:
        marker = MARKER + "-cluster" if args.cluster else MARKER
        text = DOC.read_text() if DOC.exists() else "# Rate limiting\n"
        DOC.write_text(replace_section(text, marker, section))
        print(f"updated {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
