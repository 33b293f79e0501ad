"""Limits on what sessions may hold, so memory has a bound (issue 16, item 6).

The runtime keeps every session in memory and in each checkpoint, so without limits one
client could grow a session (or many) until the pod runs out of memory, and a restart
would then crash-loop while restoring it. ``Quotas`` accounts for each session's bytes
(UTF-8 of its messages), turns and last activity, and ``SessionService`` asks it before
a turn reaches the model:

- ``max_turns``: a session with that many turns refuses more (409 ``session_turn_limit``);
- ``max_session_bytes``: a question that would take the session past it is refused (413
  ``session_too_large``); the reply is stored whatever its size, so a session may exceed
  the limit by one reply;
- ``max_sessions`` and ``max_state_bytes``: a new session beyond the count, or a turn
  beyond the replica's total, is refused (507 ``session_capacity``);
- ``idle_ttl_seconds``: sessions idle that long are erased like a DELETE (the service's
  checkpoint loop asks ``idle()``). Every stored message carries the time it was added
  (``at``, UTC ISO 8601, sealed with it), so idle time survives a restart: a restored
  session is as idle as its last message is old. Messages stored before ``at`` existed
  count as active at the restore.

Refusing keeps the stored history whole: nothing is trimmed or silently dropped. A limit
of 0 means none. Error messages name the setting, never contents. Usage is recorded when
a turn is stored, so turns admitted together (at most ``MAX_CONCURRENT``) may pass the
replica-wide limits by what they add.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from agent_runtime.clock import Clock, SystemClock
from agent_runtime.errors import SessionCapacityReached, SessionTooLarge, SessionTurnLimit
from agent_runtime.isotime import now_micros
from agent_runtime.state import MemoryState, Message, SessionKey


@dataclass(frozen=True)
class SessionLimits:
    """The limits from the settings (``AGENTRY_MAX_TURNS`` and so on); 0 means none."""

    max_turns: int = 0
    max_session_bytes: int = 0
    max_sessions: int = 0
    max_state_bytes: int = 0
    idle_ttl_seconds: float = 0.0


@dataclass
class _Usage:
    bytes: int = 0
    turns: int = 0
    last_active: float = 0.0


def size_of(messages: Iterable[Message]) -> int:
    """The bytes a session's limit counts: the UTF-8 of every message's content and of
    its tool record (a turn's tool calls and results)."""
    return sum(
        len(m["content"].encode("utf-8")) + len(m.get("tools", "").encode("utf-8"))
        for m in messages
    )


class Quotas:
    """Usage per session against the limits; idle time on the clock's monotonic seconds."""

    def __init__(self, limits: SessionLimits, clock: Clock) -> None:
        self.limits = limits
        self._wall = clock.now
        self._clock = clock.monotonic
        # The real clock's text without a datetime per message (agent_runtime/isotime.py);
        # any other clock (tests) is read through `now()` so that it stays in control.
        self._stamp = now_micros if isinstance(clock, SystemClock) else self._wall_text
        self._usage: dict[SessionKey, _Usage] = {}
        self.total_bytes = 0

    def timestamp(self) -> str:
        """The `at` of a message added now."""
        return self._stamp()

    def _wall_text(self) -> str:
        return self._wall().isoformat()

    def reset(self, state: MemoryState) -> None:
        """Account for restored sessions, each as idle as its last message is old."""
        self._usage = {
            key: _Usage(size_of(messages), _turns(messages), self._last_active(messages))
            for key, messages in state.items()
        }
        self.total_bytes = sum(u.bytes for u in self._usage.values())

    def _last_active(self, messages: list[Message]) -> float:
        now = self._clock()
        try:
            added = datetime.fromisoformat(messages[-1]["at"])
            age = (self._wall() - added).total_seconds()
        except (IndexError, KeyError, TypeError, ValueError):
            return now  # stored before messages had times, or unreadable: active now
        return now - max(age, 0.0)

    def admit(self, key: SessionKey, question: str) -> None:
        """Raise the refusal for a turn that would break a limit; return if it may run."""
        limits = self.limits
        usage = self._usage.get(key)
        if usage is None and 0 < limits.max_sessions <= len(self._usage):
            raise SessionCapacityReached(
                f"this replica holds AGENTRY_MAX_SESSIONS={limits.max_sessions} sessions; "
                "delete one, or wait for idle sessions to expire"
            )
        size = len(question.encode("utf-8"))
        current = usage or _Usage()
        if 0 < limits.max_turns <= current.turns:
            raise SessionTurnLimit(
                f"session {key.session!r} has reached AGENTRY_MAX_TURNS={limits.max_turns} "
                "turns; delete it or start a new session"
            )
        if 0 < limits.max_session_bytes < current.bytes + size:
            raise SessionTooLarge(
                f"session {key.session!r} would exceed AGENTRY_MAX_SESSION_BYTES="
                f"{limits.max_session_bytes}; delete it or start a new session"
            )
        if 0 < limits.max_state_bytes < self.total_bytes + size:
            raise SessionCapacityReached(
                f"this replica's sessions would exceed AGENTRY_MAX_STATE_BYTES="
                f"{limits.max_state_bytes}; delete sessions, or wait for idle ones to expire"
            )

    def record(self, key: SessionKey, added: Iterable[Message]) -> None:
        """A turn was stored: count its messages and mark the session active."""
        usage = self._usage.get(key)
        if usage is None:  # not setdefault: that would build a _Usage on every turn
            usage = self._usage[key] = _Usage()
        messages = list(added)
        size = size_of(messages)
        usage.bytes += size
        usage.turns += _turns(messages)
        usage.last_active = self._clock()
        self.total_bytes += size

    def turns(self, key: SessionKey) -> int:
        """The turns `key` holds, as counted by `reset` and `record`."""
        usage = self._usage.get(key)
        return 0 if usage is None else usage.turns

    def forget(self, key: SessionKey) -> None:
        usage = self._usage.pop(key, None)
        if usage is not None:
            self.total_bytes -= usage.bytes

    def idle(self) -> list[SessionKey]:
        """Sessions idle for `idle_ttl_seconds` or longer (none when the TTL is 0)."""
        if self.limits.idle_ttl_seconds <= 0:
            return []
        return [key for key in self._usage if self.is_idle(key)]

    def is_idle(self, key: SessionKey) -> bool:
        """Checked again under the session's lock: a turn may have come meanwhile."""
        usage = self._usage.get(key)
        ttl = self.limits.idle_ttl_seconds
        return usage is not None and ttl > 0 and usage.last_active <= self._clock() - ttl


def _turns(messages: Iterable[Message]) -> int:
    return sum(1 for m in messages if m["role"] == "user")
