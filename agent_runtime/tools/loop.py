"""The tool loop of one turn: model call, tool calls, results back to the model, again.

Each step offers the model the tools the servers list now. A reply without tool calls
ends the turn. Calls of one step run together, at most ``max_parallel`` at a time, in the
order the model gave them; each result (an error result included: a timeout, a server
that is down, arguments that are not JSON) goes back as a ``tool`` message. After
``max_steps`` model calls that all asked for tools the turn ends with ``STEP_LIMIT``, a
reply that says so, and the results so far stay in the session.

Each model call gets the model's own deadline (the first one's counts from the
request's arrival, as without tools), and each tool call its server's timeout. A model
failure falls back as on the plain path: the fallback's reply ends the turn, degraded.
The final text goes to ``on_delta`` in one piece (steps are not streamed); tool calls
and results go to ``on_event`` as they happen.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent_runtime.providers.base import (
    NO_USAGE,
    ChatTurn,
    Reply,
    ToolCall,
)

if TYPE_CHECKING:
    from agent_runtime.providers.guarded import GuardedModel, OnDelta
    from agent_runtime.tools.toolbox import Toolbox, ToolResult

OnToolEvent = Callable[[dict[str, Any]], Awaitable[None]]
"""Receives ``{"type": "tool_call", ...}`` and ``{"type": "tool_result", ...}`` events."""

STEP_LIMIT = (
    "I stopped after {steps} rounds of tool calls without reaching an answer (the "
    "Agent's toolPolicy.maxSteps is {steps}). The tool results so far are kept in this "
    "conversation: ask me to continue, or narrow the question."
)


@dataclass(frozen=True, slots=True)
class ToolPolicy:
    max_steps: int = 8
    max_parallel: int = 4


async def run_tool_loop(
    model: GuardedModel,
    toolbox: Toolbox,
    conversation: Sequence[ChatTurn],
    *,
    deadline: float,
    policy: ToolPolicy,
    on_delta: OnDelta | None,
    on_event: OnToolEvent | None,
) -> Reply:
    sent: list[ChatTurn] = list(conversation)
    usage = NO_USAGE
    record: list[dict[str, Any]] = []
    degraded = False
    text = STEP_LIMIT.format(steps=policy.max_steps)
    for step in range(policy.max_steps):
        step_deadline = deadline if step == 0 else model.deadline()
        completion, degraded = await model.step(sent, toolbox.offered(), step_deadline)
        usage += completion.usage or NO_USAGE
        if degraded or not completion.tool_calls:
            text = completion.text
            break
        sent.append(assistant_asking(completion.text, completion.tool_calls))
        results = await _run_calls(toolbox, completion.tool_calls, policy.max_parallel, on_event)
        for result in results:
            sent.append(tool_message(result))
            record.append(record_entry(result))
    if on_delta is not None:
        await on_delta(text, degraded)
    return Reply(text, degraded, usage, json.dumps(record) if record else "")


async def _run_calls(
    toolbox: Toolbox,
    calls: Sequence[ToolCall],
    max_parallel: int,
    on_event: OnToolEvent | None,
) -> list[ToolResult]:
    gate = asyncio.Semaphore(max_parallel)

    async def one(call: ToolCall) -> ToolResult:
        async with gate:
            if on_event is not None:
                await on_event(call_event(call))
            result = await toolbox.call(call)
            if on_event is not None:
                await on_event(result_event(result))
            return result

    return list(await asyncio.gather(*(one(call) for call in calls)))


def assistant_asking(text: str, calls: Sequence[ToolCall]) -> ChatTurn:
    """The assistant message that asked for ``calls``, as the conversation carries it."""
    asked = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls]
    return {"role": "assistant", "content": text, "tool_calls": json.dumps(asked)}


def tool_message(result: ToolResult) -> ChatTurn:
    return {
        "role": "tool",
        "content": result.text,
        "tool_call_id": result.call.id,
        "name": result.call.name,
    }


def record_entry(result: ToolResult) -> dict[str, Any]:
    """One call as the session memory keeps it (sealed with the rest of the turn)."""
    return {
        "id": result.call.id,
        "name": result.call.name,
        "server": result.server,
        "arguments": result.call.arguments,
        "result": result.text,
        "outcome": result.outcome,
    }


def call_event(call: ToolCall) -> dict[str, Any]:
    return {"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments}


def result_event(result: ToolResult) -> dict[str, Any]:
    return {
        "type": "tool_result",
        "id": result.call.id,
        "name": result.call.name,
        "server": result.server,
        "outcome": result.outcome,
        "content": result.text,
    }


def expand_record(record: str) -> list[ChatTurn]:
    """A stored turn's tool calls as the messages the model saw: one assistant message
    asking for them all, then one ``tool`` message per result."""
    entries = json.loads(record) if record else []
    if not entries:
        return []
    asked = [{"id": e["id"], "name": e["name"], "arguments": e["arguments"]} for e in entries]
    messages: list[ChatTurn] = [
        {"role": "assistant", "content": "", "tool_calls": json.dumps(asked)}
    ]
    messages.extend(
        {"role": "tool", "content": e["result"], "tool_call_id": e["id"], "name": e["name"]}
        for e in entries
    )
    return messages
