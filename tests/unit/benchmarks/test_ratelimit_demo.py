"""The pure parts of benchmarks/ratelimit_demo.py: the open-loop schedule, the client mix,
percentiles, the 429 header check, the Prometheus cross-check, the report and its place
in docs/rate-limiting.md, and the environment taken from the operator's builders.

No processes and no network: the demonstration itself is run by hand
(``python -m benchmarks.ratelimit_demo``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import ratelimit_demo as demo
from benchmarks.ratelimit_demo import AgentResult, Outcome, RuntimeUsage


def outcome(status: int, latency_ms: float, client: str = "noisy-0", ok: bool = True) -> Outcome:
    return Outcome(client, status, latency_ms / 1000, 0.0, latency_ms / 1000, ok)


def result(
    name: str,
    outcomes: list[Outcome],
    server_throttled: int | None = None,
    sample_refusal: str = "",
) -> AgentResult:
    return AgentResult(
        name,
        {"RATE_LIMIT_RPS": "50", "MAX_CONCURRENT": "64", "MODEL_PROVIDER": "builtin"},
        offered_rps=10,
        seconds=1,
        outcomes=outcomes,
        usage=RuntimeUsage(90, 95, 1.5),
        server_throttled=server_throttled,
        sample_refusal=sample_refusal,
    )


def test_open_loop_schedule_spaces_requests_evenly_whatever_the_responses() -> None:
    due = demo.open_loop_schedule(500, 20)
    assert len(due) == 10_000
    assert due[0] == 0
    assert due[1] == pytest.approx(0.002)
    assert due[-1] == pytest.approx(19.998)


def test_open_loop_schedule_of_a_fractional_rate_keeps_the_count() -> None:
    assert demo.open_loop_schedule(2.5, 2) == [0.0, 0.4, 0.8, 1.2, 1.6]


def test_no_rate_or_no_time_means_no_requests() -> None:
    assert demo.open_loop_schedule(0, 10) == []
    assert demo.open_loop_schedule(100, 0) == []


def test_the_quiet_client_gets_one_request_in_n_and_the_rest_rotate() -> None:
    names = [demo.client_for(i, clients=2, quiet_every=4) for i in range(8)]
    assert names == [
        "quiet",
        "noisy-1",
        "noisy-0",
        "noisy-1",
        "quiet",
        "noisy-1",
        "noisy-0",
        "noisy-1",
    ]
    assert demo.client_for(0, clients=3, quiet_every=0) == "noisy-0"


def test_percentiles_are_nearest_rank_on_the_sorted_values() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 100 .. 1, unsorted on purpose
    assert demo.percentile(values, 50) == 50
    assert demo.percentile(values, 95) == 95
    assert demo.percentile(values, 99) == 99
    assert demo.percentile(values, 100) == 100
    assert demo.percentile([7.0], 99) == 7
    assert demo.percentile([], 50) is None


def test_a_429_passes_the_header_check_only_with_all_three_fields() -> None:
    full = {"Retry-After": "1", "RateLimit": '"default";r=0;t=1', "RateLimit-Policy": "x"}
    assert demo.limit_headers_present(full)
    assert not demo.limit_headers_present({**full, "Retry-After": "0"})
    assert not demo.limit_headers_present({**full, "Retry-After": "1.5"})
    assert not demo.limit_headers_present({k: v for k, v in full.items() if k != "RateLimit"})
    assert not demo.limit_headers_present({"Retry-After": "2"})


def test_throttled_counter_is_summed_over_scopes_from_prometheus_text() -> None:
    text = (
        "# HELP agentry_runtime_throttled_total Requests answered 429.\n"
        "# TYPE agentry_runtime_throttled_total counter\n"
        'agentry_runtime_throttled_total{scope="client"} 3.0\n'
        'agentry_runtime_throttled_total{scope="replica"} 2200.0\n'
        'agentry_runtime_throttled_created{scope="client"} 1.7e9\n'
        "agentry_runtime_requests_total 5.0\n"
    )
    assert demo.parse_throttled(text) == 2203


def test_figures_count_statuses_and_take_latency_of_admitted_requests_only() -> None:
    outcomes = [outcome(200, ms) for ms in (1, 2, 3, 4, 100)]
    outcomes += [outcome(429, 0.5), outcome(429, 0.7, ok=False), outcome(503, 9), outcome(0, 10)]
    figures = result("r", outcomes)
    assert (figures.count(200), figures.count(429), figures.count(503), figures.other) == (
        5,
        2,
        1,
        1,
    )
    assert figures.latency_ms(200, 50) == pytest.approx(3)
    assert figures.latency_ms(200, 99) == pytest.approx(100)
    assert figures.admitted_rps == pytest.approx(5)  # over the 1 s window
    assert figures.achieved_rps == pytest.approx(8)  # the timeout got no response
    assert figures.throttled_with_headers == (1, 2)


def test_throughput_is_over_the_time_until_the_last_response_when_that_is_longer() -> None:
    late = Outcome("noisy-0", 200, 1.5, 0.0, 2.0, True)
    assert result("r", [late, late]).admitted_rps == pytest.approx(1)


def test_the_report_has_one_column_per_agent_and_reads_the_numbers_back() -> None:
    before = result("without `rateLimit`", [outcome(200, 2), outcome(503, 5)])
    after = result(
        "with `rateLimit`",
        [outcome(200, 3), outcome(429, 1), outcome(200, 4, client="quiet")],
        server_throttled=1,
        sample_refusal="HTTP/1.1 429 Too Many Requests\nRetry-After: 1",
    )
    text = demo.render_section(
        [before, after],
        command=".venv/bin/python -m benchmarks.ratelimit_demo",
        date="2026-01-01",
        machine_text="- CPU: test\n",
        clients=4,
        quiet_rps=5,
        limit_rps=50,
        total_seconds=42,
    )
    assert "| figure | without `rateLimit` | with `rateLimit` |" in text
    assert "| 429 Too Many Requests | 0 | 1 |" in text
    assert "| 503 Service Unavailable | 1 | 0 |" in text
    assert "| 429s with Retry-After + RateLimit + RateLimit-Policy | n/a | 1 of 1 |" in text
    assert "| runtime's own throttled counter | n/a | 1 |" in text
    assert "| quiet client: 200s of requests sent | n/a | 1 of 1 |" in text
    assert "| `RATE_LIMIT_RPS` | `50` | `50` |" in text
    assert "MODEL_PROVIDER" not in text  # only the limit settings are listed
    assert "Command: `.venv/bin/python -m benchmarks.ratelimit_demo`, 2026-01-01" in text
    assert "Retry-After: 1" in text
    for line in text.splitlines():
        if line.startswith("| ") and "---" not in line:
            assert line.count("|") == 4, line


def test_rewriting_the_results_keeps_the_hand_written_prose_around_the_markers() -> None:
    doc = "# Rate limiting\n\nprose before\n\n<!-- x:start -->\nold\n<!-- x:end -->\n\nafter\n"
    text = demo.replace_section(doc, "x", "new table\n")
    assert text == (
        "# Rate limiting\n\nprose before\n\n<!-- x:start -->\nnew table\n<!-- x:end -->\n\nafter\n"
    )
    assert demo.replace_section(text, "x", "new table") == text


def test_a_document_without_markers_gets_the_results_appended() -> None:
    assert demo.replace_section("# Doc\n", "x", "body") == (
        "# Doc\n\n<!-- x:start -->\nbody\n<!-- x:end -->\n"
    )


def test_the_committed_document_has_the_markers_the_demo_rewrites() -> None:
    text = Path(demo.DOC).read_text()
    assert f"<!-- {demo.MARKER}:start -->" in text
    assert f"<!-- {demo.MARKER}:end -->" in text


def test_agents_get_the_operators_one_replica_settings_with_local_mounts(tmp_path: Path) -> None:
    env, keys = demo.agent_environment("limited", rps=50, burst=50)
    assert env["AGENTRY_RATE_LIMIT_RPS"] == "50"
    assert env["AGENTRY_RATE_LIMIT_BURST"] == "50"
    assert env["AGENTRY_RATE_LIMIT_CLIENT_KEY"] == "header"
    assert env["AGENTRY_STATE_BACKEND"] == "pvc"
    assert env["AGENTRY_MODEL_PROVIDER"] == "builtin"
    assert set(keys) == {"active-key-id", f"key.{keys['active-key-id']}"}
    local = demo.local_overrides(env, 12345, tmp_path, "limited-0")
    assert local["AGENTRY_HOST"] == "127.0.0.1"
    assert local["AGENTRY_PORT"] == "12345"
    assert local["AGENTRY_STATE_DIR"] == str(tmp_path / "state")
    assert local["AGENTRY_KEYS_DIR"] == str(tmp_path / "keys")
    assert local["AGENTRY_HEARTBEAT"] == "none"
    assert local["AGENTRY_RATE_LIMIT_RPS"] == "50"
    unlimited, _ = demo.agent_environment("unlimited", rps=0, burst=0)
    assert unlimited["AGENTRY_RATE_LIMIT_RPS"] == "0"


def test_cluster_agents_differ_only_in_the_rate_limit() -> None:
    limited = demo.agent_manifest("limited", "demo", rps=50, burst=50)
    unlimited = demo.agent_manifest("unlimited", "demo", rps=0, burst=0)
    assert limited["kind"] == "Agent"
    assert limited["metadata"] == {"name": "limited", "namespace": "demo"}
    limited_spec = dict(limited["spec"])
    assert limited_spec.pop("rateLimit") == {
        "requestsPerSecond": 50,
        "burst": 50,
        "clientKey": "header",
    }
    assert limited_spec == unlimited["spec"]
