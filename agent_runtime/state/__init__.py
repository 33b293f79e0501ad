"""Encrypted, crash-safe persistence of the agent's sessions.

The runtime restores with `StateStore.load()`, appends a `JournalEntry` before it
acknowledges each request, and writes periodic checkpoints. Three stores implement the
protocol: `MemoryStore` (tests), `PvcStore` (files on a volume) and `ConfigMapStore`
(Kubernetes ConfigMaps). Recovery rules and the on-disk layout are in
docs/state-and-encryption.md.
"""

from agent_runtime.state.configmap import ConfigMapStore
from agent_runtime.state.errors import (
    EntryNotWritable,
    StateError,
    StateFull,
    StateUnreadable,
)
from agent_runtime.state.memory import MemoryStore
from agent_runtime.state.model import (
    ANONYMOUS_CLIENT,
    CheckpointInfo,
    JournalEntry,
    MemoryState,
    Message,
    Restored,
    SessionKey,
)
from agent_runtime.state.protocol import StateStore
from agent_runtime.state.pvc import PvcStore

__all__ = [
    "ANONYMOUS_CLIENT",
    "CheckpointInfo",
    "ConfigMapStore",
    "EntryNotWritable",
    "JournalEntry",
    "MemoryState",
    "MemoryStore",
    "Message",
    "PvcStore",
    "Restored",
    "SessionKey",
    "StateError",
    "StateFull",
    "StateStore",
    "StateUnreadable",
]
