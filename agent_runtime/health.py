"""Readiness checks and the model key checker.

``/readyz`` runs named checks — ``state``, ``model``, ``disk``, ``encryption`` — and
renders them like the Kubernetes API server. ``model`` reads a cached verdict that
``ModelKeyChecker`` refreshes in the background; a probe never calls the provider. An
open circuit is deliberately not a readiness failure: a provider outage must not take
every pod out of the Service (the fallback answers instead).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from agent_runtime.clock import Clock
from agent_runtime.crypto import CryptoError, KeyRing
from agent_runtime.providers.base import ModelProvider

log = logging.getLogger("agent_runtime.health")

CHECK_NAMES = ("state", "model", "disk", "encryption")


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    reason: str = ""
    detail: str = ""
    warning: str = ""  # passing, but an operator should know (e.g. restored an older checkpoint)

    @property
    def value(self) -> str:
        """The heartbeat's form: ``ok`` or ``failed: <reason>``."""
        return "ok" if self.ok else f"failed: {self.reason}"


Check = Callable[[], Awaitable[CheckResult]]


class ModelKeyChecker:
    """Re-checks the model API key every ``interval`` seconds and caches the verdict."""

    def __init__(self, provider: ModelProvider, clock: Clock, interval: float) -> None:
        self._provider = provider
        self._clock = clock
        self._interval = interval
        self.reason: str | None = "not checked yet"
        self.checks = 0

    async def refresh(self) -> None:
        self.checks += 1
        try:
            self.reason = await self._provider.check_credentials()
        except Exception as error:  # a checker bug must not kill the loop
            self.reason = f"key check failed ({type(error).__name__})"
        if self.reason is not None:
            log.warning("model key check failed", extra={"fields": {"reason": self.reason}})

    async def run(self) -> None:
        """The periodic part; the first check is awaited at startup (``app.lifecycle``)."""
        while True:
            await self._clock.sleep(self._interval)
            await self.refresh()


def disk_check(paths: list[Path], min_free: int) -> Check:
    async def check() -> CheckResult:
        for path in paths:
            probe = path
            while not probe.exists() and probe != probe.parent:
                probe = probe.parent
            try:
                free = (await asyncio.to_thread(shutil.disk_usage, probe)).free
            except OSError as error:
                return CheckResult("disk", False, f"{path}: {error.strerror or error}")
            if free < min_free:
                return CheckResult("disk", False, f"{path}: {free} bytes free, need {min_free}")
        return CheckResult("disk", True)

    return check


def encryption_check(keyring: KeyRing) -> Check:
    async def check() -> CheckResult:
        try:
            keyring.self_test()
        except CryptoError as error:
            return CheckResult("encryption", False, str(error))
        return CheckResult("encryption", True, detail=f"active key {keyring.active_key_id}")

    return check


def model_check(checker: ModelKeyChecker) -> Check:
    async def check() -> CheckResult:
        if checker.reason is None:
            return CheckResult("model", True)
        return CheckResult("model", False, checker.reason)

    return check


async def run_checks(checks: dict[str, Check]) -> list[CheckResult]:
    results = []
    for name, check in checks.items():
        try:
            results.append(await check())
        except Exception as error:
            results.append(CheckResult(name, False, f"check raised {type(error).__name__}"))
    return results


def passes(results: list[CheckResult], excluded: frozenset[str] = frozenset()) -> bool:
    """The probe's verdict: every check passes, except those the caller excluded."""
    return all(r.ok or r.name in excluded for r in results)


def render_text(
    results: list[CheckResult], verbose: bool, excluded: frozenset[str] = frozenset()
) -> str:
    passed = passes(results, excluded)
    if not verbose:
        return "ok" if passed else "readyz check failed"
    lines = [_verbose_line(r, r.name in excluded) for r in results]
    lines.append("readyz check passed" if passed else "readyz check failed")
    return "\n".join(lines) + "\n"


def _verbose_line(result: CheckResult, excluded: bool = False) -> str:
    suffix = " (excluded from this verdict)" if excluded else ""
    if not result.ok:
        return f"[-]{result.name} failed: {result.reason}{suffix}"
    warning = f" (warning: {result.warning})" if result.warning else ""
    return f"[+]{result.name} ok{warning}{suffix}"


def render_json(
    results: list[CheckResult], excluded: frozenset[str] = frozenset()
) -> dict[str, object]:
    return {
        "status": "ok" if passes(results, excluded) else "failed",
        "checks": {
            r.name: {
                "status": "ok" if r.ok else "failed",
                "reason": r.reason or None,
                "detail": r.detail or None,
                "warning": r.warning or None,
                **({"excluded": True} if r.name in excluded else {}),
            }
            for r in results
        },
    }
