"""The exceptions of the state layer.

`StateError` is anything a caller reports as "state not available" (readiness, a failed
append answered 5xx). `StateUnreadable` is the serious one: state exists but this key ring
cannot read it, so the store freezes itself and refuses every write until restarted with
the right keys; the stored bytes stay exactly as they were. `EntryNotWritable` fails one
append and nothing else.
"""

from __future__ import annotations


class StateError(Exception):
    """The store cannot do what was asked; the message is a short reason for /readyz."""


class StateUnreadable(StateError):
    """Stored state exists but cannot be read with the key ring (wrong or missing key)."""


class StateFull(StateError):
    """The backend has no room for what must be written (ConfigMap budget, full disk).

    Answered 507 Insufficient Storage, and the `state` readiness check fails with the same
    reason until a later write succeeds.
    """


class EntryNotWritable(StateError):
    """One journal entry cannot be encoded (text that is not valid UTF-8, a record too big).

    Only the append of that entry fails; the others of its batch are written.
    """
