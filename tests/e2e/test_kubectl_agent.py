"""Every `kubectl agent` command against the local cluster with the operator installed.

The plugin runs as a user runs it: `kubectl agent ...` through the cluster's own kubectl
with the virtual environment's bin directory on PATH (so kubectl's plugin discovery is
part of what is tested), as a subprocess, reading the admin kubeconfig from KUBECONFIG.

Two Agents share the module to keep it economical:
- `bot`: one replica (configmap), the builtin model; status, health, metrics (and --watch), logs
  (merged, -f, --since, --raw, --previous after a crash), invoke, restart, stop/start,
  rotate-key and the global options run against it, in file order;
- `modelled`: one replica talking to a fake OpenAI-compatible provider on the host
  (bound to the host's address on the cluster's node link, so the pod reaches it); its failures make
  invoke print `[degraded]` and its rejected key makes `health` exit 1.
The error paths (Agent not found, no cluster, forbidden) check the one-line message
and the documented exit code.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from agentry_cluster.pytest_plugin import scratch_namespace
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.agents import apply_agent
from tests.support.e2e import get_json, wait_for
from tests.support.fake_provider import FakeProvider

pytestmark = pytest.mark.e2e

VENV_BIN = Path(sys.prefix) / "bin"
BOT = "bot"
MODELLED = "modelled"
VALID_KEY = "sk-test-valid"
# Heartbeats and key checks every 2 s come from the chart (tests/e2e/conftest.py).


# --- running the plugin -------------------------------------------------------------


def plugin_env(cluster: Any, **extra: str) -> dict[str, str]:
    env = cluster.env()
    env["PATH"] = os.pathsep.join([str(VENV_BIN), str(cluster.bin_dir), env["PATH"]])
    env.update(extra)
    return env


def kubectl_agent(
    cluster: Any, *args: str, timeout: float = 300, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """`kubectl agent ARGS` as a user types it; never raises on a non-zero exit."""
    return subprocess.run(
        [str(cluster.bin_dir / "kubectl"), "agent", *args],
        capture_output=True,
        text=True,
        env=plugin_env(cluster, **extra_env),
        timeout=timeout,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The plugin's error contract: the exit code, one `error:` line, no traceback."""
    assert result.returncode == code, f"exit {result.returncode}\n{result.stdout}{result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    return lines[0]


def start_plugin(cluster: Any, *args: str) -> subprocess.Popen[str]:
    """A long-running `kubectl agent` (--watch, -f), in its own process group."""
    return subprocess.Popen(
        [str(cluster.bin_dir / "kubectl"), "agent", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=plugin_env(cluster),
        start_new_session=True,
    )


def interrupt(process: subprocess.Popen[str]) -> tuple[str, str]:
    """Ctrl-C for the plugin (and kubectl in front of it); its remaining output."""
    os.killpg(process.pid, signal.SIGINT)
    try:
        return process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()  # reap it and close its pipes before failing
        raise


def read_lines_until(process: subprocess.Popen[str], wanted: int, timeout: float) -> list[str]:
    """Lines of stdout until `wanted` have arrived, or what came within `timeout`."""
    lines: list[str] = []
    done = threading.Event()

    def reader() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if len(lines) >= wanted:
                break
        done.set()

    threading.Thread(target=reader, daemon=True).start()
    done.wait(timeout)
    return list(lines)


# --- the cluster side ---------------------------------------------------------------


def agent_status(cluster: Any, namespace: str, name: str) -> dict[str, Any]:
    body = get_json(cluster, "agents.agentry.dev", name, "-n", namespace) or {}
    return dict(body.get("status") or {})


def wait_phase(cluster: Any, namespace: str, name: str, phase: str, ready: int) -> None:
    def reached() -> bool:
        status = agent_status(cluster, namespace, name)
        return status.get("phase") == phase and status.get("readyReplicas", 0) == ready

    wait_for(reached, 240, f"Agent {name} {phase} with {ready} ready", interval=2)


def replica_pods(cluster: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    pods = get_json(cluster, "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={name}")
    return sorted((pods or {}).get("items", []), key=lambda p: p["metadata"]["name"])


@pytest.fixture(scope="module")
def ns(operator: Any) -> Iterator[str]:
    """One namespace for the module's Agents (the per-test `namespace` would recreate them)."""
    with scratch_namespace(operator, "t-plugin") as name:
        yield name


@pytest.fixture(scope="module")
def bot(operator: Any, ns: str) -> str:
    """Agent `bot`: one replica (configmap keeps one replica's memory), builtin model,
    state checkpointed every 3 s."""
    state = {"backend": "configmap", "checkpointIntervalSeconds": 3}
    apply_agent(operator, BOT, ns, {"replicas": 1, "state": state})
    wait_phase(operator, ns, BOT, "Running", 1)
    return BOT


@dataclass
class BridgeProvider(FakeProvider):
    """The fake provider listening on the host's address on the node link, reachable from pods."""

    host: str = "127.0.0.1"

    async def __aenter__(self) -> BridgeProvider:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self.server = TestServer(app, host=self.host)
        await self.server.start_server()
        return self


class ProviderThread:
    """Runs a `BridgeProvider` on its own event loop so synchronous tests can drive it."""

    def __init__(self, host: str) -> None:
        self.fake = BridgeProvider(host=host)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ProviderThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.fake.__aenter__(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.__aexit__(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def do(self, action: Any, *args: Any) -> None:
        """Run a scripting call (fail, valid_keys changes) on the provider's loop."""
        asyncio.run_coroutine_threadsafe(_call(action, *args), self.loop).result(10)

    @property
    def completions(self) -> int:
        return len(self.fake.completions)


async def _call(action: Any, *args: Any) -> None:
    action(*args)


@pytest.fixture(scope="module")
def provider(operator: Any) -> Iterator[ProviderThread]:
    with ProviderThread(operator.info["host_ip"]) as running:
        yield running


@pytest.fixture(scope="module")
def modelled(operator: Any, ns: str, provider: ProviderThread) -> str:
    """Agent `modelled`: one replica using the fake provider, no retries, builtin fallback."""
    operator.kubectl(
        "create", "secret", "generic", "model-key", f"--from-literal=api-key={VALID_KEY}", "-n", ns
    )
    assert provider.fake.server is not None
    spec = {
        "replicas": 1,
        "model": {
            "provider": "openai",
            "endpoint": provider.fake.url,
            "name": "test-model",
            "apiKeySecretRef": {"name": "model-key", "key": "api-key"},
            "timeoutSeconds": 5,
            "maxRetries": 0,
        },
        "fallback": "builtin",
        "state": {"backend": "configmap", "checkpointIntervalSeconds": 5},
    }
    apply_agent(operator, MODELLED, ns, spec)
    wait_phase(operator, ns, MODELLED, "Running", 1)
    return MODELLED


# --- the tests, in the order a user meets the commands --------------------------------


def test_kubectl_discovers_the_plugin_on_path_and_shows_its_help(operator: Any) -> None:
    listed = subprocess.run(
        [str(operator.bin_dir / "kubectl"), "plugin", "list"],
        capture_output=True,
        text=True,
        env=plugin_env(operator),
        timeout=60,
    )
    assert str(VENV_BIN / "kubectl-agent") in listed.stdout
    help_text = ok(kubectl_agent(operator, "--help"))
    for command in ("status", "health", "metrics", "logs", "start", "stop", "restart"):
        assert command in help_text
    assert "rotate-key" in help_text
    assert "invoke" in help_text
    assert "--kubeconfig" in ok(kubectl_agent(operator, "invoke", "--help"))


def test_status_shows_phase_readiness_conditions_and_the_last_checkpoint(
    operator: Any, ns: str, bot: str
) -> None:
    # The runtime checkpoints when there is something new to keep: one conversation.
    ok(kubectl_agent(operator, "invoke", bot, "-n", ns, "--session", "status", "hello"))
    wait_for(
        lambda: agent_status(operator, ns, bot).get("lastCheckpoint"),
        60,
        "a first checkpoint in the status",
        interval=2,
    )
    # The generated key ring has a random id `k-<8 hex>` (issue 17), named in the status.
    key_id = agent_status(operator, ns, bot)["lastCheckpoint"]["keyId"]
    assert re.fullmatch(r"k-[0-9a-f]{8}", key_id), key_id
    table = ok(kubectl_agent(operator, "status", bot, "-n", ns))
    assert f"Agent:            {bot} (namespace {ns})" in table
    assert "Phase:            Running" in table
    assert "Ready:            1/1" in table
    assert f"key {key_id}" in table
    conditions = table.split("Conditions:", 1)[1].splitlines()
    assert any(line.split()[:2] == ["Ready", "True"] for line in conditions if line.strip())

    as_json = json.loads(ok(kubectl_agent(operator, "status", bot, "-n", ns, "-o", "json")))
    assert as_json["phase"] == "Running"
    assert as_json["readyReplicas"] == 1
    assert as_json["lastCheckpoint"]["keyId"] == key_id
    ready = next(c for c in as_json["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"

    as_yaml = yaml.safe_load(ok(kubectl_agent(operator, "status", bot, "-n", ns, "-o", "yaml")))
    assert as_yaml["name"] == bot
    assert as_yaml["phase"] == "Running"


def test_health_lists_every_replica_and_exits_0_when_all_are_healthy(
    operator: Any, ns: str, bot: str
) -> None:
    result = kubectl_agent(operator, "health", bot, "-n", ns)
    text = ok(result)
    assert f"{bot}-0" in text
    assert "All 1 replica(s) healthy." in text

    report = json.loads(ok(kubectl_agent(operator, "health", bot, "-n", ns, "-o", "json")))
    assert report["healthy"] is True
    assert [r["replica"] for r in report["replicas"]] == [f"{bot}-0"]
    for replica in report["replicas"]:
        assert replica["components"] == {
            "state": "ok",
            "model": "ok",
            "disk": "ok",
            "encryption": "ok",
        }


def test_invoke_prints_the_reply_through_the_service_proxy(
    operator: Any, ns: str, bot: str
) -> None:
    first = kubectl_agent(operator, "invoke", bot, "-n", ns, "--session", "s1", "hello there")
    assert ok(first).strip(), "a reply is printed"
    assert not first.stdout.startswith("[degraded]")
    assert "continue with --session s1" in first.stderr

    answer = json.loads(
        ok(kubectl_agent(operator, "invoke", bot, "-n", ns, "--session", "s2", "hi", "-o", "json"))
    )
    assert answer["session"] == "s2"
    assert answer["turn"] == 1
    assert answer["degraded"] is False
    assert answer["reply"]

    new_session = kubectl_agent(operator, "invoke", bot, "-n", ns, "hi")
    ok(new_session)
    assert "(session cli-" in new_session.stderr


def test_metrics_counts_requests_per_replica_and_in_total_and_watch_refreshes(
    operator: Any, ns: str, bot: str
) -> None:
    for i in range(6):
        ok(kubectl_agent(operator, "invoke", bot, "-n", ns, "--session", f"m{i}", "count me"))

    def counted() -> dict[str, Any] | None:
        report = json.loads(ok(kubectl_agent(operator, "metrics", bot, "-n", ns, "-o", "json")))
        return report if (report["total"]["requests"] or 0) >= 6 else None

    report = wait_for(counted, 60, "6 requests in the heartbeats", interval=2)
    replicas = report["replicas"]
    assert [r["replica"] for r in replicas] == [f"{bot}-0"]
    assert report["total"]["requests"] == sum(r["requests"] for r in replicas)
    assert report["total"]["ok"] == sum(r["ok"] for r in replicas)

    table = ok(kubectl_agent(operator, "metrics", bot, "-n", ns))
    assert table.splitlines()[0].split()[:3] == ["REPLICA", "REQUESTS", "OK"]
    assert any(line.startswith("TOTAL") for line in table.splitlines())

    watching = start_plugin(operator, "metrics", bot, "-n", ns, "--watch", "-i", "1", "-o", "json")
    try:
        refreshes = read_lines_until(watching, 2, timeout=60)
    finally:
        interrupt(watching)
    assert len(refreshes) == 2, "two refreshes within a minute"
    times = [json.loads(line)["time"] for line in refreshes]
    assert times[0] < times[1]
    assert watching.returncode in (0, 130, -signal.SIGINT)


def test_logs_are_in_time_order_with_since_and_raw(operator: Any, ns: str, bot: str) -> None:
    documents = [
        json.loads(line)
        for line in ok(kubectl_agent(operator, "logs", bot, "-n", ns, "-o", "json")).splitlines()
    ]
    assert {d["pod"] for d in documents} == {f"{bot}-0"}
    times = [d["time"] for d in documents]
    assert times == sorted(times), "merged in time order"

    pretty = ok(kubectl_agent(operator, "logs", bot, "-n", ns)).splitlines()
    assert any(line.startswith(f"{bot}-0 ") for line in pretty)
    assert not any(line.split(maxsplit=2)[-1].startswith("{") for line in pretty if line)

    raw = ok(kubectl_agent(operator, "logs", bot, "-n", ns, "--raw")).splitlines()
    records = [json.loads(line) for line in raw if line.startswith("{")]
    assert records
    assert all("message" in r or "msg" in r for r in records)

    # Heartbeat Leases renew every 2 s and probes run, but a 1-second window holds far
    # fewer lines than the whole history.
    recent = ok(kubectl_agent(operator, "logs", bot, "-n", ns, "--since", "1s")).splitlines()
    assert len(recent) < len(pretty)
    assert kubectl_agent(operator, "logs", bot, "-n", ns, "--since", "soon").returncode == 2


def test_logs_follow_prints_lines_as_they_arrive(operator: Any, ns: str, bot: str) -> None:
    following = start_plugin(operator, "logs", bot, "-n", ns, "-f", "--since", "1s", "--raw")
    try:
        time.sleep(3)  # the follow streams open
        for i in range(4):
            ok(kubectl_agent(operator, "invoke", bot, "-n", ns, "--session", f"f{i}", "follow"))
        time.sleep(3)
    finally:
        out, err = interrupt(following)
    assert "Traceback" not in err
    requests = [
        json.loads(line)
        for line in out.splitlines()
        if line.startswith("{") and '"route"' in line and "messages" in line
    ]
    assert len(requests) >= 4, out[-2000:]
    assert {r.get("replica") for r in requests} == {f"{bot}-0"}


def test_logs_previous_shows_the_run_before_a_crash(operator: Any, ns: str, bot: str) -> None:
    pod = replica_pods(operator, ns, bot)[0]
    name = pod["metadata"]["name"]
    container = pod["status"]["containerStatuses"][0]
    restarts = container["restartCount"]
    pid = int(container["containerID"].removeprefix("process://"))
    killed_at = datetime.now(UTC)
    os.kill(pid, signal.SIGKILL)  # the agent process of this pod crashes

    def restarted() -> bool:
        current = get_json(operator, "pod", name, "-n", ns) or {}
        statuses = (current.get("status") or {}).get("containerStatuses") or [{}]
        return statuses[0].get("restartCount", 0) > restarts and statuses[0].get("ready")

    wait_for(restarted, 120, f"{name} restarted and ready", interval=2)
    previous = [
        json.loads(line)
        for line in ok(
            kubectl_agent(operator, "logs", bot, "-n", ns, "--previous", "-o", "json")
        ).splitlines()
    ]
    crashed = [d for d in previous if d["pod"] == name]
    assert crashed, "the crashed run's lines are shown"
    assert all(_parse_time(d["time"]) <= killed_at for d in crashed)
    current = [
        json.loads(line)
        for line in ok(kubectl_agent(operator, "logs", bot, "-n", ns, "-o", "json")).splitlines()
    ]
    assert all(_parse_time(d["time"]) >= killed_at for d in current if d["pod"] == name)
    refused = kubectl_agent(operator, "logs", bot, "-n", ns, "--previous", "-f")
    one_line_error(refused, 2)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_restart_rolls_every_pod_and_waits_until_they_are_ready(
    operator: Any, ns: str, bot: str
) -> None:
    wait_phase(operator, ns, bot, "Running", 1)
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in replica_pods(operator, ns, bot)}
    out = ok(kubectl_agent(operator, "restart", bot, "-n", ns))
    assert out.strip() == f"Agent {bot} restarted: 1/1 ready"
    after = replica_pods(operator, ns, bot)
    assert {p["metadata"]["name"] for p in after} == set(before)
    for pod in after:
        assert pod["metadata"]["uid"] != before[pod["metadata"]["name"]], "a new pod"
        assert any(
            c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"]
        )
    sts = get_json(operator, "statefulset", bot, "-n", ns)
    assert "agentry.dev/restartedAt" in sts["spec"]["template"]["metadata"]["annotations"]


def test_stop_and_start_wait_for_the_phase_and_no_wait_returns_at_once(
    operator: Any, ns: str, bot: str
) -> None:
    wait_phase(operator, ns, bot, "Running", 1)
    stopped = ok(kubectl_agent(operator, "stop", bot, "-n", ns))
    assert stopped.strip() == f"Agent {bot} stopped: phase Suspended, 0/0 ready"
    assert agent_status(operator, ns, bot)["phase"] == "Suspended"
    assert replica_pods(operator, ns, bot) == [] or all(
        p["metadata"].get("deletionTimestamp") for p in replica_pods(operator, ns, bot)
    )
    assert ok(kubectl_agent(operator, "health", bot, "-n", ns)).startswith(
        f"Agent {bot} has no replicas to check"
    )

    started = ok(kubectl_agent(operator, "start", bot, "-n", ns))
    assert started.strip() == f"Agent {bot} started: phase Running, 1/1 ready"

    began = time.monotonic()
    quick = ok(kubectl_agent(operator, "stop", bot, "-n", ns, "--no-wait"))
    assert time.monotonic() - began < 15
    assert quick.strip() == f"Agent {bot}: stop requested"
    assert get_json(operator, "agents.agentry.dev", bot, "-n", ns)["spec"]["suspend"] is True
    resumed = json.loads(ok(kubectl_agent(operator, "start", bot, "-n", ns, "-o", "json")))
    assert resumed["phase"] == "Running"
    assert resumed["readyReplicas"] == 1


def test_rotate_key_adds_an_active_key_keeps_the_old_and_the_next_checkpoint_uses_it(
    operator: Any, ns: str, bot: str
) -> None:
    wait_phase(operator, ns, bot, "Running", 1)
    ok(kubectl_agent(operator, "invoke", bot, "-n", ns, "--session", "before-rotation", "hi"))
    result = kubectl_agent(operator, "rotate-key", bot, "-n", ns, "--timeout", "3m")
    if result.returncode != 0:
        pods = operator.kubectl("get", "pods,statefulsets", "-n", ns, "-o", "wide").stdout
        pytest.fail(f"{result.stderr}\n{pods}\n{agent_status(operator, ns, bot)}")
    out = ok(result)
    secret = get_json(operator, "secret", f"{bot}-keys", "-n", ns)
    ids = sorted(k.removeprefix("key.") for k in secret["data"] if k.startswith("key."))
    new_id = base64.b64decode(secret["data"]["active-key-id"]).decode()
    old_id = next(i for i in ids if i != new_id)
    assert len(ids) == 2
    assert all(re.fullmatch(r"k-[0-9a-f]{8}", i) for i in ids), ids  # random ids (issue 17)
    assert f"Key {new_id} is active; waiting" in result.stderr
    assert f"key {new_id} added to Secret {bot}-keys and made active (previous {old_id}" in out
    assert f"A checkpoint written with key {new_id} is reported" in out
    assert secret["data"][f"key.{old_id}"] != secret["data"][f"key.{new_id}"]
    wait_for(
        lambda: (
            (agent_status(operator, ns, bot).get("lastCheckpoint") or {}).get("keyId") == new_id
        ),
        90,
        f"status.lastCheckpoint.keyId {new_id}",
        interval=2,
    )
    # The pods restarted with both keys and read the state written under the old key: a state
    # they could not read would show as a failing `state` component.
    wait_phase(operator, ns, bot, "Running", 1)
    ok(kubectl_agent(operator, "health", bot, "-n", ns))


def test_namespace_context_and_kubeconfig_options_pick_the_cluster_and_namespace(
    operator: Any, ns: str, bot: str, tmp_path: Path
) -> None:
    # Options before the command work as well as after it.
    assert (
        json.loads(ok(kubectl_agent(operator, "-n", ns, "-o", "json", "status", bot)))["name"]
        == bot
    )
    assert (
        json.loads(ok(kubectl_agent(operator, "status", bot, "--namespace", ns, "-o", "json")))[
            "namespace"
        ]
        == ns
    )

    config = tmp_path / "copy.kubeconfig"
    config.write_text(operator.kubeconfig.read_text())
    view = json.loads(
        operator.kubectl("config", "view", "--kubeconfig", str(config), "-o", "json").stdout
    )
    context = view["contexts"][0]["context"]
    operator.kubectl(
        "config",
        "set-context",
        "plugin-e2e",
        f"--cluster={context['cluster']}",
        f"--user={context['user']}",
        f"--namespace={ns}",
        "--kubeconfig",
        str(config),
    )
    nowhere = str(tmp_path / "absent.kubeconfig")
    # KUBECONFIG points nowhere: only --kubeconfig can make these work; the context
    # supplies the namespace.
    picked = kubectl_agent(
        operator,
        "status",
        bot,
        "--kubeconfig",
        str(config),
        "--context",
        "plugin-e2e",
        "-o",
        "json",
        KUBECONFIG=nowhere,
    )
    assert json.loads(ok(picked))["namespace"] == ns
    unknown = kubectl_agent(
        operator, "status", bot, "--kubeconfig", str(config), "--context", "nope"
    )
    assert 'context "nope" not found' in one_line_error(unknown, 5)


def test_agent_not_found_is_one_line_with_exit_code_3(operator: Any, ns: str) -> None:
    for command in ("status", "health", "metrics", "logs", "stop", "restart", "rotate-key"):
        result = kubectl_agent(operator, command, "nope", "-n", ns)
        line = one_line_error(result, 3)
        assert line == f'error: Agent "nope" not found in namespace "{ns}"', command
    invoked = kubectl_agent(operator, "invoke", "nope", "-n", ns, "hello")
    one_line_error(invoked, 3)


def test_no_reachable_cluster_is_one_line_with_exit_code_5(operator: Any, tmp_path: Path) -> None:
    missing = kubectl_agent(operator, "status", BOT, "--kubeconfig", str(tmp_path / "none"))
    assert "no Kubernetes configuration found" in one_line_error(missing, 5)

    config = tmp_path / "dead.kubeconfig"
    config.write_text(operator.kubeconfig.read_text())
    # A port on which nothing listens: bind one, note it, close it.
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    view = json.loads(
        operator.kubectl("config", "view", "--kubeconfig", str(config), "-o", "json").stdout
    )
    cluster_name = view["clusters"][0]["name"]
    operator.kubectl(
        "config",
        "set-cluster",
        cluster_name,
        f"--server=https://127.0.0.1:{port}",
        "--kubeconfig",
        str(config),
    )
    began = time.monotonic()
    dead = kubectl_agent(operator, "status", BOT, "--kubeconfig", str(config))
    line = one_line_error(dead, 5)
    assert f"cannot reach the Kubernetes API server at https://127.0.0.1:{port}" in line
    assert time.monotonic() - began < 30


def test_a_service_account_without_rights_is_forbidden_with_exit_code_4(
    operator: Any, ns: str, bot: str, tmp_path: Path
) -> None:
    operator.kubectl("create", "serviceaccount", "nobody", "-n", ns)
    token = operator.kubectl("create", "token", "nobody", "-n", ns, "--duration", "10m")
    view = json.loads(operator.kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    cluster = view["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": "nobody", "user": {"token": token.stdout.strip()}}],
        "contexts": [
            {"name": "nobody", "context": {"cluster": "local", "user": "nobody", "namespace": ns}}
        ],
        "current-context": "nobody",
    }
    path = tmp_path / "nobody.kubeconfig"
    path.write_text(json.dumps(config))
    for args in (("status", bot), ("health", bot), ("stop", bot, "--no-wait")):
        result = kubectl_agent(operator, *args, "--kubeconfig", str(path))
        line = one_line_error(result, 4)
        assert "forbidden" in line, line
        assert "system:serviceaccount" in line, line
    assert (
        get_json(operator, "agents.agentry.dev", bot, "-n", ns)["spec"].get("suspend") is not True
    )


def test_invoke_continues_a_session_and_marks_a_reply_degraded_when_the_model_fails(
    operator: Any, ns: str, modelled: str, provider: ProviderThread
) -> None:
    answered = ok(kubectl_agent(operator, "invoke", modelled, "-n", ns, "--session", "d", "ping"))
    assert answered.strip() == "model says: ping"
    again = json.loads(
        ok(
            kubectl_agent(
                operator, "invoke", modelled, "-n", ns, "--session", "d", "hi", "-o", "json"
            )
        )
    )
    assert again == {"session": "d", "reply": "model says: hi", "degraded": False, "turn": 2}

    provider.do(provider.fake.fail, 3, 500)
    degraded = ok(kubectl_agent(operator, "invoke", modelled, "-n", ns, "--session", "d", "ping"))
    assert degraded.startswith("[degraded] ")
    as_json = json.loads(
        ok(
            kubectl_agent(
                operator, "invoke", modelled, "-n", ns, "--session", "d", "x", "-o", "json"
            )
        )
    )
    assert as_json["degraded"] is True


def test_health_exits_1_and_names_the_model_when_the_provider_rejects_the_key(
    operator: Any, ns: str, modelled: str, provider: ProviderThread
) -> None:
    ok(kubectl_agent(operator, "health", modelled, "-n", ns))
    provider.do(provider.fake.valid_keys.discard, VALID_KEY)  # the provider revokes the key

    def failing() -> subprocess.CompletedProcess[str] | None:
        result = kubectl_agent(operator, "health", modelled, "-n", ns)
        return result if result.returncode == 1 else None

    result = wait_for(failing, 60, "health to exit 1", interval=2)
    assert "Failing:" in result.stdout
    assert f"{modelled}-0: model: API key rejected by provider (401)" in result.stdout
    report = json.loads(kubectl_agent(operator, "health", modelled, "-n", ns, "-o", "json").stdout)
    assert report["healthy"] is False
    assert report["replicas"][0]["components"]["model"].startswith("failed")

    provider.do(provider.fake.valid_keys.add, VALID_KEY)
    wait_for(
        lambda: kubectl_agent(operator, "health", modelled, "-n", ns).returncode == 0,
        60,
        "health to recover once the key is accepted again",
        interval=2,
    )
