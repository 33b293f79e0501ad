"""Prometheus metrics (prefix ``agentry_runtime_``) and the compact summary for the heartbeat.

One ``Metrics`` object per app, each with its own registry, so tests never share counters.
``summary()`` produces the ``metrics`` part of the heartbeat (docs/architecture.md):
cumulative counters since the process started and p50/p95 over recent requests.
"""

from __future__ import annotations

from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from agent_runtime.loopmetrics import HistogramChild, LoopCounter, LoopHistogram

OUTCOMES = (
    "ok",
    "degraded",
    "client_error",
    "unauthorized",
    "not_found",
    "throttled",
    "rejected",
    "unavailable",
    "server_error",
)
# A model call's three histogram children (input tokens, output tokens, duration).
ModelCallChildren = tuple[HistogramChild, HistogramChild, HistogramChild]
CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "open": 2}
# The buckets the GenAI semantic conventions advise for these two histograms.
GEN_AI_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
GEN_AI_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip


class Metrics:
    """Every metric the runtime exports, plus the counters behind the heartbeat summary."""

    def __init__(self, latency_window: int = 2048) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ns = "agentry_runtime"
        r = self.registry
        # Updated on every request, on the event loop only: plain numbers (loopmetrics.py).
        self.requests = LoopCounter(
            f"{ns}_requests", "Session API requests by outcome", ["outcome"], registry=r
        )
        self.latency = LoopHistogram(
            f"{ns}_request_duration_seconds",
            "Session API request latency",
            [],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        ).labels()
        self.throttled = Counter(
            f"{ns}_throttled",
            "Requests refused by the rate limiter or the per-client in-flight cap",
            ["scope"],
            registry=r,
        )
        self.model_errors = Counter(
            f"{ns}_model_errors", "Failed model provider calls", ["kind"], registry=r
        )
        self.circuit_state = Gauge(
            f"{ns}_circuit_state", "Model circuit: 0 closed, 1 half-open, 2 open", registry=r
        )
        self.checkpoint_duration = Histogram(
            f"{ns}_checkpoint_duration_seconds",
            "Time to write a checkpoint",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
            registry=r,
        )
        self.checkpoint_bytes = Gauge(
            f"{ns}_checkpoint_bytes", "Size of the last checkpoint", registry=r
        )
        # The stale-checkpoint alert reads this (charts/agentry PrometheusRule).
        self.checkpoint_last_success = Gauge(
            f"{ns}_checkpoint_last_success_timestamp_seconds",
            "Unix time of the last checkpoint written successfully; 0 before the first",
            registry=r,
        )
        self.checkpoint_failures = Counter(
            f"{ns}_checkpoint_failures", "Checkpoints that failed", registry=r
        )
        self.restore_fallbacks = Counter(
            f"{ns}_restore_fallbacks",
            "Restores that skipped an unreadable newest checkpoint",
            registry=r,
        )
        self.turn_conflicts = Counter(
            f"{ns}_turn_conflicts",
            "Turns whose reply was computed on a session another turn had moved on "
            "(postgres backend); each was asked again under the session's row lock",
            registry=r,
        )
        self.sessions = Gauge(f"{ns}_sessions", "Sessions held in memory", registry=r)
        self.in_flight = Gauge(f"{ns}_in_flight_requests", "Requests in flight", registry=r)
        self.ready = Gauge(f"{ns}_ready", "1 when every /readyz check passes", registry=r)
        self.tool_calls = Counter(
            f"{ns}_tool_calls",
            "Tool calls by server, tool and outcome (ok, tool_error, timeout, unavailable, "
            "circuit_open, invalid)",
            ["server", "tool", "outcome"],
            registry=r,
        )
        self.tool_call_duration = Histogram(
            f"{ns}_tool_call_duration_seconds",
            "Time of tool calls that reached their server",
            ["server", "tool"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        # OpenTelemetry GenAI semantic conventions, exported the Prometheus way: dots
        # become underscores, the unit "s" a _seconds suffix, "{token}" nothing
        # (docs/tools.md, "Token usage", has the mapping).
        self.gen_ai_token_usage = LoopHistogram(
            "gen_ai_client_token_usage",
            "Tokens used per model call (gen_ai.client.token.usage)",
            ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_token_type"],
            buckets=GEN_AI_TOKEN_BUCKETS,
            registry=r,
        )
        self.gen_ai_duration = LoopHistogram(
            "gen_ai_client_operation_duration_seconds",
            "Duration of model calls (gen_ai.client.operation.duration)",
            ["gen_ai_operation_name", "gen_ai_provider_name"],
            buckets=GEN_AI_DURATION_BUCKETS,
            registry=r,
        )
        self._tokens = {"input": 0, "output": 0}
        self._tool_call_count = 0
        # Labelled children looked up once: ``labels()`` hashes and locks on every call.
        self._outcome_counters = {outcome: self.requests.labels(outcome) for outcome in OUTCOMES}
        self._counts = dict.fromkeys(OUTCOMES, 0)
        # A model call's three children per provider.
        self._model_call_children: dict[str, ModelCallChildren] = {}
        self._latencies: deque[float] = deque(maxlen=latency_window)

    def observe_request(self, outcome: str, seconds: float) -> None:
        counter = self._outcome_counters.get(outcome)
        if counter is None:
            counter = self._outcome_counters[outcome] = self.requests.labels(outcome)
        counter.inc()
        self.latency.observe(seconds)
        self._counts[outcome] = self._counts.get(outcome, 0) + 1
        self._latencies.append(seconds)

    def observe_model_call(
        self, provider: str, input_tokens: int, output_tokens: int, seconds: float
    ) -> None:
        """One model call: the GenAI histograms and the heartbeat's token totals."""
        children = self._model_call_children.get(provider)
        if children is None:
            children = self._model_call_children[provider] = (
                self.gen_ai_token_usage.labels("chat", provider, "input"),
                self.gen_ai_token_usage.labels("chat", provider, "output"),
                self.gen_ai_duration.labels("chat", provider),
            )
        inputs, outputs, duration = children
        inputs.observe(input_tokens)
        outputs.observe(output_tokens)
        duration.observe(seconds)
        self._tokens["input"] += input_tokens
        self._tokens["output"] += output_tokens

    def count_tool_call(self) -> None:
        self._tool_call_count += 1

    def set_circuit(self, state: str) -> None:
        self.circuit_state.set(CIRCUIT_VALUES[state])

    def summary(self) -> dict[str, float | int]:
        c = self._counts
        ordered = sorted(self._latencies)
        return {
            "requests": sum(c.values()),
            "ok": c["ok"],
            "degraded": c["degraded"],
            "errors": c["degraded"] + c["server_error"] + c["unavailable"] + c["rejected"],
            "throttled": c["throttled"],
            "rejected": c["rejected"],
            "p50Ms": round(_quantile(ordered, 0.50) * 1000, 2),
            "p95Ms": round(_quantile(ordered, 0.95) * 1000, 2),
            "inputTokens": self._tokens["input"],
            "outputTokens": self._tokens["output"],
            "toolCalls": self._tool_call_count,
        }

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]
