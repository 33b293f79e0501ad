"""The offline responder: deterministic, needs nothing outside the process.

It is the ``builtin`` provider and the fallback when a real model fails. With tools it
has one deterministic way to call one (``tool_step``): the message
``/tool <name> <json-args>`` calls that tool, and the reply reports its result, so the
demo and the offline tests run the tool loop without a model. Replies are
useful rather than random: they acknowledge the message, say how far the conversation has
come, recall the user's previous message, and answer a few simple kinds of question
(greeting, time-free arithmetic, help). With the Agent's instructions (a leading
``system`` message) it speaks as the persona their first line names, so a demo shows
that the instructions reached the agent.

Arithmetic is evaluated from Python's syntax tree, whose parser and this module's walk
recurse once per operator: an expression is bounded at ``MAX_EXPRESSION_CHARS`` before it
is parsed, so 20,000 ``+`` terms or 30,000 unary minuses get a polite refusal instead of
a RecursionError or MemoryError (a 500 for the caller).
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import AsyncIterator, Sequence

from agent_runtime.providers.base import (
    ChatTurn,
    Completion,
    Conversation,
    FunctionTool,
    ToolCall,
    Tools,
)

_ARITH = re.compile(r"[\d\s\.\+\-\*/\(\)%]+")
MAX_EXPRESSION_CHARS = 200
_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


_YOU_ARE = re.compile(r"^you are\s+", re.IGNORECASE)
TOOL_COMMAND = re.compile(r"/tool\s+(?P<name>[A-Za-z0-9_.-]+)(?:\s+(?P<args>.*))?", re.DOTALL)


class BuiltinProvider:
    name = "builtin"
    in_process = True
    """Answers within ``complete``, without I/O: the guard awaits it without a deadline task."""
    reports_usage = False  # its usage is the estimate of providers/base.py

    async def complete_with_tools(
        self, conversation: Conversation, tools: Tools, *, deadline: float | None = None
    ) -> Completion:
        """``/tool <name> <json-args>`` asks for that tool, then the result is the reply."""
        return tool_step(conversation, tools) or Completion(respond(conversation))

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def check_credentials(self) -> str | None:
        return None

    async def complete(
        self, conversation: Sequence[ChatTurn], *, deadline: float | None = None
    ) -> str:
        return respond(conversation)  # instant: no deadline to watch

    async def stream(
        self, conversation: Sequence[ChatTurn], *, deadline: float | None = None
    ) -> AsyncIterator[str]:
        for piece in pieces(respond(conversation)):
            yield piece


PERSONA_MAX_CHARS = 80
RECALL_MAX_CHARS = 80


def pieces(text: str) -> list[str]:
    """``text`` cut after each space, as a model streams it: joined, they give it back."""
    return re.findall(r"\S+\s*|\s+", text)


def persona(conversation: Sequence[ChatTurn], roles: list[str | None] | None = None) -> str:
    """Who the instructions' first line says the agent is: "You are Ada." → "Ada"."""
    roles = _roles(conversation) if roles is None else roles
    if "system" not in roles:
        return ""
    system = conversation[roles.index("system")]["content"]
    first = next((line.strip() for line in system.splitlines() if line.strip()), "")
    first = _YOU_ARE.sub("", first).rstrip(" .!")
    if len(first) > PERSONA_MAX_CHARS:
        first = first[: PERSONA_MAX_CHARS - 1].rstrip() + "…"
    return first


def respond(conversation: Sequence[ChatTurn]) -> str:
    """A deterministic reply to the last user message, in the instructions' persona."""
    roles = _roles(conversation)
    reply = _answer(conversation, roles)
    speaker = persona(conversation, roles)
    return f"[{speaker}] {reply}" if speaker else reply


def _roles(conversation: Sequence[ChatTurn]) -> list[str | None]:
    """Each message's role, collected once per reply: a session's whole history comes
    with every turn, so every later look at it uses this list. A list comprehension is
    about five times faster here than ``map`` over ``operator.methodcaller``."""
    return [turn.get("role") for turn in conversation]


def _users(conversation: Sequence[ChatTurn], roles: list[str | None], count: int) -> list[str]:
    """The contents of the last ``count`` user messages, oldest first."""
    found: list[str] = []
    for index in range(len(roles) - 1, -1, -1):
        if len(found) == count:
            break
        if roles[index] == "user":
            found.append(conversation[index]["content"])
    return found[::-1]


def _answer(conversation: Sequence[ChatTurn], roles: list[str | None]) -> str:
    turn = roles.count("user")
    if not turn:
        return "Hello. Send me a message and I will answer."
    recent = _users(conversation, roles, 2)
    last = recent[-1].strip()
    lowered = last.lower().rstrip("?!. ")
    if lowered in {"hi", "hello", "hey", "good morning", "good evening"}:
        return f"Hello! This is turn {turn} of our conversation. How can I help?"
    if lowered in {"help", "what can you do"}:
        return (
            "I am the built-in offline responder: I keep our conversation, do simple "
            "arithmetic, and summarise what you have told me. Ask 'summary' to see it."
        )
    if lowered in {"summary", "summarise", "summarize"}:
        earlier = _users(conversation, roles, turn)[:-1]
        if not earlier:
            return "Nothing to summarise yet: this is your first message."
        words = sum(len(u.split()) for u in earlier)
        return f"So far you sent {len(earlier)} message(s), {words} word(s) in all."
    expression = last.rstrip("=? ").removeprefix("what is").strip()
    if expression and _ARITH.fullmatch(expression):
        return _calculate(expression) or _brief(recent, turn)
    return _brief(recent, turn)


def _brief(recent: Sequence[str], turn: int) -> str:
    """``recent``: the last user message, after the one before it if there is one."""
    words = len(recent[-1].split())
    reply = f"You said {words} word(s) (turn {turn})."
    if turn > 1:
        reply += f" Before that you said: {_quote(recent[-2])}."
    return reply + " I am answering offline, so I keep it brief."


def _quote(text: str) -> str:
    """One earlier message, on one line and cut short, in quotes."""
    flat = " ".join(text.split())
    if len(flat) > RECALL_MAX_CHARS:
        flat = flat[: RECALL_MAX_CHARS - 1].rstrip() + "…"
    return f"“{flat}”"


def _calculate(expression: str) -> str | None:
    """The answer to an arithmetic question, or None when it cannot be worked out."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        return (
            f"That expression has {len(expression)} characters; I work out arithmetic of "
            f"up to {MAX_EXPRESSION_CHARS}."
        )
    value = _evaluate(expression)
    return None if value is None else f"{expression} = {value:g}"


def _evaluate(expression: str) -> float | None:
    try:
        tree = ast.parse(expression, mode="eval")
        return float(_eval_node(tree.body))
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, TypeError, RecursionError):
        return None


def _eval_node(node: ast.expr) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _eval_node(node.left), _eval_node(node.right)
        if abs(left) > 1e12 or abs(right) > 1e12:
            raise OverflowError
        return float(_OPS[type(node.op)](left, right))  # type: ignore[operator]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return float(_OPS[type(node.op)](_eval_node(node.operand)))  # type: ignore[operator]
    raise ValueError("unsupported expression")


def tool_step(conversation: Sequence[ChatTurn], tools: Sequence[FunctionTool]) -> Completion | None:
    """The builtin's deterministic tool use, or None for an ordinary reply.

    When the last message is the user's ``/tool <name> <json-args>``, the step asks for
    that one call (id ``call_1``); when the last messages are tool results, the reply
    reports them. The arguments are passed as written (the tool server's error says what
    is wrong with them); without arguments the call gets ``{}``.
    """
    last = conversation[-1] if conversation else None
    if last is None:
        return None
    if last.get("role") == "tool":
        return Completion(_results(conversation))
    if last.get("role") != "user":
        return None
    command = TOOL_COMMAND.fullmatch(last.get("content", "").strip())
    if command is None:
        return None
    name, arguments = command["name"], (command["args"] or "{}").strip()
    if name not in {tool.name for tool in tools}:
        offered = ", ".join(sorted(tool.name for tool in tools)) or "none"
        return Completion(f"There is no tool named {name}. Tools: {offered}.")
    return Completion("", (ToolCall("call_1", name, arguments),))


def _results(conversation: Sequence[ChatTurn]) -> str:
    results = []
    for turn in reversed(conversation):
        if turn.get("role") != "tool":
            break
        results.append(f"Tool {turn.get('name', '?')} returned: {turn.get('content', '')}")
    return "\n".join(reversed(results))
