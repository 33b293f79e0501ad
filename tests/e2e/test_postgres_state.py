"""Shared memory on PostgreSQL: any replica serves any session (issue 8).

On the local cluster with the chart-installed operator and the cluster's own PostgreSQL
(started by `up` beside the cluster, reached by the pods at the host address), one
Agent `shared` with 3 replicas on the postgres backend serves the module, in file order:

- 12 sequential turns of one session through the Service (API server proxy) are turns
  1..12, served by more than one pod, and the history read through the Service is
  complete and in order;
- 16 concurrent turns on one session are 16 distinct turns, none lost;
- `kubectl scale` 3 → 5 keeps the existing pods (same UIDs, no restart) and the session
  goes on at turn 13;
- deleting every pod loses no turn;
- pg_dump of the database holds no message text;
- PostgreSQL stopped for 20 s under load: 503 with Retry-After (no 500, no hang), every
  200 is in the history afterwards, the pods recover with no restart;
- `kubectl agent status` shows the backend and its sessions, `health` the database;
  `rotate-key` returns once no row is left under the old key, and memory is intact.

Turns go through `/api/v1/namespaces/NS/services/shared:80/proxy/v1/sessions/ID/messages`,
the path `kubectl create --raw` uses (tests.support.e2e.ServiceProxy keeps the status and
headers). Which pod served a turn is read from the pods' request logs by X-Request-ID.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from agentry_cluster.pytest_plugin import scratch_namespace

from tests.e2e.test_agent_lifecycle import agent_pods, wait_phase
from tests.e2e.test_kubectl_agent import kubectl_agent, ok
from tests.support.agents import apply_agent, connection_secret, shared_state
from tests.support.e2e import ProxyReply, ServiceProxy, get_json, is_ready, wait_for

pytestmark = pytest.mark.e2e

AGENT = "shared"
SESSION = "shared-memory"
MARKER = "zebra-quartz-"  # message text that must never reach the database in clear


@pytest.fixture(scope="module")
def database(cluster_postgres: Any, cluster: Any) -> Iterator[tuple[str, str]]:
    """(database name, URI through the host address) for this module's Agent."""
    from agentry_cluster import database as cluster_database
    from agentry_cluster.layout import ClusterInfo

    name = f"e2e_{secrets.token_hex(6)}"
    cluster_postgres.createdb(name)
    yield name, cluster_database.url_for(ClusterInfo.from_dict(cluster.info), name)
    cluster_postgres.dropdb(name)


@pytest.fixture(scope="module")
def ns(operator: Any) -> Iterator[str]:
    with scratch_namespace(operator, "pg") as name:
        yield name


@pytest.fixture(scope="module")
def shared(operator: Any, ns: str, database: tuple[str, str]) -> ServiceProxy:
    operator.kubectl("apply", "-f", "-", input=json.dumps(connection_secret(ns, database[1])))
    # Staging probes every 10 s, 3 failures: a 20 s database outage leaves the pods in the
    # Service, so callers get the runtime's 503 (development's 15 s would empty it first).
    spec = {
        "replicas": 3,
        "environment": "staging",
        "state": shared_state(),
        "model": {"provider": "builtin"},
    }
    apply_agent(operator, AGENT, ns, spec)
    wait_phase(operator, AGENT, ns, "Running", timeout=240)
    wait_for(lambda: len(ready_pods(operator, ns)) == 3, 180, "3 ready pods")
    return ServiceProxy(operator, ns, AGENT)


def ready_pods(cluster: Any, ns: str) -> dict[str, tuple[str, int]]:
    """Ready, running pods of the Agent: name → (uid, restart count)."""
    found = {}
    for pod in agent_pods(cluster, AGENT, ns):
        if is_ready(pod) and not pod["metadata"].get("deletionTimestamp"):
            restarts = pod["status"]["containerStatuses"][0]["restartCount"]
            found[pod["metadata"]["name"]] = (pod["metadata"]["uid"], restarts)
    return found


def turn(proxy: ServiceProxy, session: str, content: str, request_id: str = "") -> ProxyReply:
    headers = {"X-Client-ID": "e2e"}
    if request_id:
        headers["X-Request-ID"] = request_id
    path = f"/v1/sessions/{session}/messages"
    return proxy.request("POST", path, {"content": content}, headers)


def served_by(cluster: Any, ns: str, request_ids: set[str]) -> dict[str, str]:
    """request id → the pod whose request log names it."""
    found: dict[str, str] = {}
    for pod in ready_pods(cluster, ns):
        logs = cluster.kubectl("logs", pod, "-n", ns, check=False).stdout
        for line in logs.splitlines():
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if record.get("request_id") in request_ids and record.get("message") == "request":
                found[record["request_id"]] = pod
    return found


def error_lines(cluster: Any, ns: str) -> str:
    """The pods' log lines at level error or above, to tell a runtime 500 from a proxy one."""
    lines = []
    for pod in agent_pods(cluster, AGENT, ns):
        name = pod["metadata"]["name"]
        logs = cluster.kubectl("logs", name, "-n", ns, check=False).stdout
        for line in logs.splitlines():
            try:
                level = json.loads(line).get("level", "")
            except ValueError:
                level = "error" if "Traceback" in line else ""
            if level in ("error", "critical"):
                lines.append(f"{name}: {line}")
    return "\n".join(lines[-40:])


def user_contents(proxy: ServiceProxy, session: str) -> list[str]:
    return [m["content"] for m in proxy.history(session) if m["role"] == "user"]


def test_twelve_sequential_turns_through_the_service_are_one_to_twelve_in_order(
    operator: Any, ns: str, shared: ServiceProxy
) -> None:
    ids = [f"seq-{secrets.token_hex(4)}-{n}" for n in range(1, 13)]
    for n, request_id in enumerate(ids, 1):
        reply = turn(shared, SESSION, f"{MARKER}{n}", request_id)
        assert reply.status == 200, reply
        assert reply.body["turn"] == n, f"turn {n} came back as {reply.body['turn']}"
    assert user_contents(shared, SESSION) == [f"{MARKER}{n}" for n in range(1, 13)]
    pods = wait_for(
        lambda: (found := served_by(operator, ns, set(ids))) and len(found) == 12 and found,
        30,
        "every turn in a pod's request log",
    )
    assert len(set(pods.values())) > 1, f"the Service spread the turns: {pods}"


def test_sixteen_concurrent_turns_on_one_session_are_sixteen_distinct_turns(
    shared: ServiceProxy,
) -> None:
    session = "concurrent"
    with ThreadPoolExecutor(max_workers=16) as pool:
        replies = list(pool.map(lambda n: turn(shared, session, f"c{n}"), range(16)))
    assert [r.status for r in replies] == [200] * 16, [r.status for r in replies]
    assert sorted(r.body["turn"] for r in replies) == list(range(1, 17))
    assert sorted(user_contents(shared, session)) == sorted(f"c{n}" for n in range(16))


def test_scaling_to_five_keeps_the_pods_and_the_session_goes_on_at_turn_thirteen(
    operator: Any, ns: str, shared: ServiceProxy
) -> None:
    before = ready_pods(operator, ns)
    assert len(before) == 3
    operator.kubectl("scale", f"agents.agentry.dev/{AGENT}", "--replicas=5", "-n", ns)
    wait_for(lambda: len(ready_pods(operator, ns)) == 5, 180, "5 ready pods")
    after = ready_pods(operator, ns)
    assert {name: after[name] for name in before} == before, "the 3 pods were not restarted"
    reply = turn(shared, SESSION, f"{MARKER}13")
    assert (reply.status, reply.body["turn"]) == (200, 13), reply
    limits = get_json(operator, "configmap", f"{AGENT}-limits", "-n", ns)
    assert limits is not None


def test_deleting_every_pod_loses_no_turn(operator: Any, ns: str, shared: ServiceProxy) -> None:
    old = {uid for uid, _ in ready_pods(operator, ns).values()}
    selector = f"agentry.dev/agent={AGENT}"
    operator.kubectl("delete", "pods", "-n", ns, "-l", selector, "--wait=false")

    def replaced() -> bool:
        pods = ready_pods(operator, ns)
        return len(pods) == 5 and not old & {uid for uid, _ in pods.values()}

    wait_for(replaced, 300, "5 new ready pods in place of the deleted ones", interval=2)
    assert user_contents(shared, SESSION) == [f"{MARKER}{n}" for n in range(1, 14)]
    reply = turn(shared, SESSION, f"{MARKER}14")
    assert (reply.status, reply.body["turn"]) == (200, 14), reply


def test_a_dump_of_the_database_holds_no_message_text(
    cluster_postgres: Any, database: tuple[str, str], shared: ServiceProxy
) -> None:
    from agentry_cluster.postgres import find_bin_dir

    bin_dir = find_bin_dir()
    assert bin_dir is not None
    dump = subprocess.run(
        [str(bin_dir / "pg_dump"), "--data-only", database[1]],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "COPY " in dump or "INSERT " in dump, "the dump holds the rows"
    assert MARKER not in dump
    assert "concurrent" in dump or SESSION in dump, "ids are in clear (justified in the docs)"


class Load:
    """Turns on fresh sessions, one after another, from a thread, until stopped."""

    def __init__(self, proxy: ServiceProxy) -> None:
        self.proxy = proxy
        self.replies: list[tuple[str, ProxyReply, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            session = f"load-{n}"
            started = time.monotonic()
            reply = turn(self.proxy, session, f"{MARKER}load-{n}")
            self.replies.append((session, reply, time.monotonic() - started))
            time.sleep(0.2)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)


def test_a_database_outage_is_503_with_retry_after_and_no_acknowledged_turn_is_lost(
    operator: Any, ns: str, cluster_postgres: Any, shared: ServiceProxy
) -> None:
    before = ready_pods(operator, ns)
    with Load(shared) as load:
        time.sleep(3)
        cluster_postgres.stop(mode="fast")
        try:
            time.sleep(20)
        finally:
            cluster_postgres.start()
        wait_for(
            lambda: any(r.status == 200 for _, r, _ in load.replies[-3:]),
            60,
            "turns answered again",
        )
    statuses = {r.status for _, r, _ in load.replies}
    assert 503 in statuses, statuses
    unexpected = [reply for _, reply, _ in load.replies if reply.status not in (200, 503)]
    assert not unexpected, (
        f"no 500 or proxy error during the outage: {unexpected}\n"
        f"errors in the pods' logs:\n{error_lines(operator, ns)}"
    )
    assert max(seconds for _, _, seconds in load.replies) < 25, "nothing hung"
    for _, reply, _ in load.replies:
        if reply.status == 503:
            assert int(reply.headers.get("Retry-After", 0)) >= 1, reply
            assert reply.body["error"]["code"], reply.body
    for session, reply, _ in load.replies:
        if reply.status == 200:
            assert user_contents(shared, session) == [f"{MARKER}{session}"], session
    wait_for(lambda: ready_pods(operator, ns) == before, 120, "the same pods ready again")


def test_status_and_health_show_the_database(operator: Any, ns: str, shared: ServiceProxy) -> None:
    def reported() -> dict[str, Any] | None:
        status = json.loads(ok(kubectl_agent(operator, "status", AGENT, "-n", ns, "-o", "json")))
        state = status.get("state") or {}
        return status if state.get("backend") == "postgres" and state.get("sessions") else None

    status = wait_for(reported, 90, "status with the postgres backend and its sessions", 3)
    assert status["state"]["sessions"] >= 2
    assert status["state"]["rowsUnderOldKeys"] == 0
    table = ok(kubectl_agent(operator, "status", AGENT, "-n", ns))
    assert "postgres" in table
    health = ok(kubectl_agent(operator, "health", AGENT, "-n", ns))
    assert health.splitlines()[0].split()[6] == "DATABASE"


def test_rotation_leaves_no_row_under_the_old_key_and_memory_intact(
    operator: Any, ns: str, cluster_postgres: Any, database: tuple[str, str], shared: ServiceProxy
) -> None:
    result = kubectl_agent(operator, "rotate-key", AGENT, "-n", ns, "--timeout", "5m")
    out = ok(result)
    assert "no row is left under an older key" in out, out
    secret = get_json(operator, "secret", f"{AGENT}-keys", "-n", ns)
    ids = [k.removeprefix("key.") for k in secret["data"] if k.startswith("key.")]
    assert len(ids) == 2, "the old key stays in the ring"
    active = base64.b64decode(secret["data"]["active-key-id"]).decode()
    in_rows = cluster_postgres.psql("SELECT DISTINCT key_id FROM agentry.turns", database[0])
    assert in_rows.split() == [active], "every row is sealed under the new key"
    assert user_contents(shared, SESSION) == [f"{MARKER}{n}" for n in range(1, 15)]
    reply = turn(shared, SESSION, f"{MARKER}15")
    assert (reply.status, reply.body["turn"]) == (200, 15), reply
