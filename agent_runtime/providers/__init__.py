"""Model providers behind one protocol: ``builtin`` (offline) and ``openai`` (HTTP).

``guarded.GuardedModel`` wraps a provider with the circuit breaker and the fallback; the
session service talks only to it.
"""

from agent_runtime.providers.base import ChatTurn, ModelProvider, Reply

__all__ = ["ChatTurn", "ModelProvider", "Reply"]
