"""One container of a pod: start its process in the pod's namespaces, copy its output to
log files, run its probes, restart it by policy with back-off, stop it gracefully.

The pod worker owns the runners and gives them a `PodContext`; each runner keeps a
`ContainerSnapshot` that the worker turns into pod status whenever `notify` is called.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

import aiohttp

from agentry_cluster.node import logs, probes
from agentry_cluster.node.errors import ContainerConfigError
from agentry_cluster.node.restarts import BackOff, should_restart
from agentry_cluster.node.status import ContainerSnapshot

Json = dict[str, Any]
CONFIG_RETRY_SECONDS = 2.0


class PodContext(Protocol):
    netns: str
    pod_ip: str
    restart_policy: str
    grace_seconds: float
    backoff_base: float
    session: aiohttp.ClientSession

    def launch_spec(self, container: Json) -> Json: ...
    def container_dir(self, name: str) -> Path: ...
    def notify(self) -> None: ...


def launcher_argv(netns: str, spec_file: Path) -> list[str]:
    """The command that enters the pod's namespaces and becomes the container."""
    return [
        "ip",
        "netns",
        "exec",
        netns,
        "unshare",
        "--mount",
        "--uts",
        "--propagation",
        "private",
        "--",
        sys.executable,
        "-m",
        "agentry_cluster.node.launch",
        str(spec_file),
    ]


def exit_code_of(returncode: int) -> tuple[int, int]:
    """(exitCode, signal) as the kubelet reports them: 128+N for a signal N."""
    if returncode < 0:
        return 128 - returncode, -returncode
    return returncode, 0


async def _pump(stream: asyncio.StreamReader, name: str, out: IO[str]) -> None:
    """Copy one output stream into the log file, a record per line."""
    buf = b""

    def emit(data: bytes, partial: bool) -> None:
        out.write(
            logs.format_record(datetime.now(UTC), name, data.decode(errors="replace"), partial)
        )

    while chunk := await stream.read(65536):
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            emit(line, False)
        while len(buf) > logs.PARTIAL_LIMIT:
            emit(buf[: logs.PARTIAL_LIMIT], True)
            buf = buf[logs.PARTIAL_LIMIT :]
        out.flush()
    if buf:
        emit(buf, False)
    out.flush()


class ContainerRunner:
    def __init__(self, ctx: PodContext, container: Json, *, init: bool = False) -> None:
        self.ctx = ctx
        self.spec = container
        self.name: str = container["name"]
        self.init = init
        self.snapshot = ContainerSnapshot(name=self.name, image=container.get("image", ""))
        self.backoff = BackOff(base=ctx.backoff_base)
        self.proc: asyncio.subprocess.Process | None = None
        self._stopping = asyncio.Event()
        self._kill_reason = ""

    # Log files: one per run, numbered by restart count; the previous one is kept.
    def log_path(self, run: int) -> Path:
        return self.ctx.container_dir(self.name) / f"{run}.log"

    @property
    def current_log(self) -> Path:
        return self.log_path(self.snapshot.restart_count)

    @property
    def previous_log(self) -> Path | None:
        n = self.snapshot.restart_count - 1
        return self.log_path(n) if n >= 0 else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def succeeded(self) -> bool:
        return self.snapshot.state == "terminated" and self.snapshot.exit_code == 0

    def _set(self, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(self.snapshot, key, value)
        self.ctx.notify()

    async def _wait_stop(self, seconds: float) -> bool:
        """Sleep, but return True at once when the container is being stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()

    async def run(self) -> None:
        """Run until the container finishes for good or `stop` is called."""
        while not self._stopping.is_set():
            try:
                spec = self.ctx.launch_spec(self.spec)
            except ContainerConfigError as exc:
                self._set(state="waiting", reason="CreateContainerConfigError", message=str(exc))
                if await self._wait_stop(CONFIG_RETRY_SECONDS):
                    return
                continue
            ran_for, code = await self._run_once(spec)
            finished = self.snapshot.terminated_state()
            if self._stopping.is_set():
                return
            policy = self.ctx.restart_policy
            if self.init:
                policy = "Never" if policy == "Never" else "OnFailure"
            if not should_restart(policy, code):
                return
            delay = self.backoff.next_delay(ran_for)
            if delay > 0:
                self._set(
                    state="waiting",
                    reason="CrashLoopBackOff",
                    message=f"back-off {delay:g}s restarting failed container={self.name}",
                    last_terminated=finished,
                    ready=False,
                )
                if await self._wait_stop(delay):
                    return
            self.snapshot.last_terminated = finished
            self.snapshot.restart_count += 1

    async def _run_once(self, spec: Json) -> tuple[float, int]:
        directory = self.ctx.container_dir(self.name)
        directory.mkdir(parents=True, exist_ok=True)
        spec_file = directory / "launch.json"
        spec_file.write_text(json.dumps(spec))
        stale = self.log_path(self.snapshot.restart_count - 2)
        stale.unlink(missing_ok=True)
        started = time.monotonic()
        self._kill_reason = ""
        # Opening a local file is quick; the writes are small and buffered.
        with open(self.current_log, "a", encoding="utf-8") as out:  # noqa: ASYNC230
            self.proc = await asyncio.create_subprocess_exec(
                *launcher_argv(self.ctx.netns, spec_file),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
            assert self.proc.stdout is not None
            assert self.proc.stderr is not None
            has_startup = "startupProbe" in self.spec
            self._set(
                state="running",
                reason="",
                message="",
                started_at=datetime.now(UTC),
                container_id=f"process://{self.proc.pid}",
                ready=not has_startup and "readinessProbe" not in self.spec,
                started=not has_startup,
                ever_started=True,
            )
            pumps = [
                asyncio.create_task(_pump(self.proc.stdout, "stdout", out)),
                asyncio.create_task(_pump(self.proc.stderr, "stderr", out)),
            ]
            probing = asyncio.create_task(self._probe_all())
            returncode = await self.proc.wait()
            probing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probing
            await asyncio.gather(*pumps, return_exceptions=True)
        code, sig = exit_code_of(returncode)
        self._set(
            state="terminated",
            reason=("Completed" if code == 0 else "Error"),
            message=self._kill_reason,
            finished_at=datetime.now(UTC),
            exit_code=code,
            signal=sig,
            ready=False,
        )
        return time.monotonic() - started, code

    # Probes ------------------------------------------------------------------------
    async def _probe_all(self) -> None:
        if "startupProbe" in self.spec:
            passed = await self._probe_loop("startup", self.spec["startupProbe"])
            if not passed:
                return
            self._set(started=True, ready="readinessProbe" not in self.spec)
        loops = [
            self._probe_loop(role, self.spec[key])
            for role, key in (("readiness", "readinessProbe"), ("liveness", "livenessProbe"))
            if key in self.spec
        ]
        if loops:
            await asyncio.gather(*loops)

    async def _probe_loop(self, role: str, probe: Json) -> bool:
        """Run one probe until it decides (startup) or forever (readiness, liveness)."""
        try:
            spec = probes.parse_probe(probe, self.spec)
        except ValueError as exc:
            self._set(message=f"{role} probe: {exc}")
            return False
        state = probes.ProbeState(spec)
        pid = self.proc.pid if self.proc else None
        while self.running:
            await asyncio.sleep(probes.next_delay(state, role))
            ok = await probes.run_probe(spec, self.ctx.pod_ip, pid, self.ctx.session)
            changed = state.record(ok)
            if role == "readiness" and changed:
                self._set(ready=bool(state.result))
            elif role == "startup" and state.result is not None:
                if state.result:
                    return True
                await self._kill(f"Container {self.name} failed startup probe, will be restarted")
                return False
            elif role == "liveness" and state.result is False:
                await self._kill(f"Container {self.name} failed liveness probe, will be restarted")
                return False
        return False

    async def _kill(self, reason: str) -> None:
        self._kill_reason = reason
        await self.terminate(self.ctx.grace_seconds)

    # Stopping ----------------------------------------------------------------------
    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    async def terminate(self, grace: float) -> None:
        """SIGTERM the process group, SIGKILL after `grace` seconds."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self._signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(self.proc.wait()), grace)
        except TimeoutError:
            self._signal(signal.SIGKILL)
            await self.proc.wait()

    async def stop(self, grace: float) -> None:
        """Stop for good: no restart after this."""
        self._stopping.set()
        await self.terminate(grace)
        # Processes left in the group after the leader exited (a shell's children).
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
