"""Tool-loop overhead per step, and the cost of token accounting per turn (issue 11).

**Per step.** A real MCP server (the SDK's MCPServer over streamable HTTP on loopback)
serves ``echo``, a tool whose own time is a few microseconds. The runtime's tool loop (the
``GuardedModel`` and ``Toolbox`` production uses) runs turns of ``--steps`` steps against
a scripted in-process model that asks for ``echo`` until the last step. A step is the time
from one tool call to the next (the call over MCP, the result fed back, the next model
call): with a tool that does nothing, that is the overhead a step adds to the tool's own
time. ``mcp_call`` is the call's round trip alone (client, loopback HTTP, the SDK's
server), ``loop_without_call`` the rest. Printed as p50 and p99 over every step.

**Token accounting.** What a turn pays to count tokens: the usage estimate of a
20-message conversation (the builtin's case, a provider's ``usage`` costs less), the two
GenAI histograms and the totals, and a token budget's reserve and settle.

``python -m benchmarks.tools`` prints one JSON object; about 20 seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agent_runtime.circuit import CircuitBreaker  # noqa: E402
from agent_runtime.config import ToolServer as ToolServerConfig  # noqa: E402
from agent_runtime.metrics import Metrics  # noqa: E402
from agent_runtime.providers.base import (  # noqa: E402
    Completion,
    Conversation,
    ToolCall,
    Tools,
)
from agent_runtime.providers.builtin import BuiltinProvider  # noqa: E402
from agent_runtime.providers.guarded import GuardedModel  # noqa: E402
from agent_runtime.token_budget import TokenBudget  # noqa: E402
from agent_runtime.tools.loop import ToolPolicy  # noqa: E402
from agent_runtime.tools.toolbox import Toolbox  # noqa: E402
from tests.support.mcp_server import ToolServer  # noqa: E402


class ScriptedModel(BuiltinProvider):
    """Asks for ``echo`` until the conversation holds ``steps - 1`` tool results."""

    name = "scripted"

    def __init__(self, steps: int) -> None:
        self.steps = steps

    async def complete_with_tools(
        self, conversation: Conversation, tools: Tools, *, deadline: float | None = None
    ) -> Completion:
        done = sum(1 for turn in conversation if turn.get("role") == "tool")
        if done >= self.steps - 1:
            return Completion("done")
        return Completion("", (ToolCall(f"c{done}", "echo", '{"text": "x"}'),))


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def step_overhead(turns: int, steps: int) -> dict[str, Any]:
    own: list[float] = []
    async with ToolServer() as server:
        metrics = Metrics()
        config = ToolServerConfig(name="bench", url=server.url, timeoutSeconds=10)
        toolbox = Toolbox([config], metrics, time.monotonic)
        await toolbox.start()
        calls = toolbox.call

        async def measured(call: ToolCall) -> Any:
            before = len(server.calls)
            started = time.perf_counter()
            result = await calls(call)
            assert len(server.calls) == before + 1
            own.append(time.perf_counter() - started)
            return result

        toolbox.call = measured  # type: ignore[method-assign]
        breaker = CircuitBreaker(failure_threshold=5, open_seconds=30, clock=time.monotonic)
        model = GuardedModel(
            ScriptedModel(steps),
            breaker,
            fallback="builtin",
            metrics=metrics,
            toolbox=toolbox,
            tool_policy=ToolPolicy(max_steps=steps, max_parallel=1),
        )
        marks: list[list[float]] = []

        async def on_event(event: dict[str, Any]) -> None:
            if event["type"] == "tool_call":
                marks[-1].append(time.perf_counter())

        for _ in range(turns):
            marks.append([])
            reply = await model.reply([{"role": "user", "content": "go"}], on_event=on_event)
            marks[-1].append(time.perf_counter())
            assert reply.text == "done", reply.text
        await toolbox.close()
    per_step = [b - a for turn in marks for a, b in itertools.pairwise(turn)]
    call_times = own[: len(per_step)]
    loop_only = [step - call for step, call in zip(per_step, call_times, strict=False)]
    return {
        "steps": len(per_step),
        "step_ms": {"p50": _ms(_quantile(per_step, 0.5)), "p99": _ms(_quantile(per_step, 0.99))},
        "mcp_call_ms": {
            "p50": _ms(_quantile(call_times, 0.5)),
            "p99": _ms(_quantile(call_times, 0.99)),
        },
        "loop_without_call_ms": {
            "p50": _ms(_quantile(loop_only, 0.5)),
            "p99": _ms(_quantile(loop_only, 0.99)),
        },
    }


def accounting_cost(rounds: int) -> dict[str, float]:
    """Microseconds a turn spends on its tokens, by part."""
    from agent_runtime.providers.base import TokenUsage, estimate_tokens

    metrics = Metrics()
    conversation = [{"role": "user", "content": "x" * 200} for _ in range(20)]
    budget = TokenBudget(per_client=True, max_clients=1000, clock=time.monotonic)
    budget.configure(10**12, 0)

    def estimate() -> TokenUsage:
        prompt = sum(estimate_tokens(t["content"]) for t in conversation)
        return TokenUsage(prompt, estimate_tokens("y" * 400), estimated=True)

    def record() -> None:
        metrics.observe_model_call("builtin", 1000, 100, 0.001)

    def reserve_settle() -> None:
        reservation = budget.reserve("client", 300)
        reservation.tokens.used = 700
        budget.settle(reservation)

    out = {}
    for name, work in (("estimate", estimate), ("metrics", record), ("budget", reserve_settle)):
        started = time.perf_counter()
        for _ in range(rounds):
            work()
        out[f"{name}_us"] = round((time.perf_counter() - started) / rounds * 1e6, 2)
    out["total_us"] = round(sum(out.values()), 2)
    return out


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


async def main(argv: Sequence[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tools")
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=20_000)
    args = parser.parse_args(argv)
    result = {
        "tool_loop": await step_overhead(args.turns, args.steps),
        "token_accounting": accounting_cost(args.rounds),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
