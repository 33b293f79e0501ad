"""`make demo`'s shared-memory part: turns of one session through the Agent's Service, and
which pod answered each, until two turns have landed on different pods.

Each turn is the command a user types (`kubectl create --raw .../services/NAME:80/proxy/
v1/sessions/ID/messages -f body.json`: the API server's service proxy picks a ready pod).
The pod that served it is the one whose request log gained a `POST .../messages` line.
Stops after the first turn answered by a pod other than the first turn's, or after
`--max-turns`; exits 1 when a turn number is not the next one (memory did not follow).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def is_message_post(line: str) -> bool:
    """A request log line of `POST /v1/sessions/<id>/messages` (the route template's
    parameter name is the runtime's business, so only its shape is matched)."""
    if not line.startswith("{"):
        return False
    record = json.loads(line)
    route = str(record.get("route", ""))
    return (
        record.get("method") == "POST"
        and route.startswith("/v1/sessions/")
        and route.endswith("/messages")
    )


def kubectl(*args: str) -> str:
    return subprocess.run(["kubectl", *args], capture_output=True, text=True, check=True).stdout


def posts_by_pod(agent: str, namespace: str) -> dict[str, int]:
    """How many message POSTs each of the Agent's pods has logged."""
    pods = json.loads(
        kubectl("get", "pods", "-n", namespace, "-l", f"agentry.dev/agent={agent}", "-o", "json")
    )["items"]
    counts = {}
    for pod in pods:
        name = pod["metadata"]["name"]
        lines = kubectl("logs", name, "-n", namespace).splitlines()
        counts[name] = sum(1 for line in lines if is_message_post(line))
    return counts


def turn(agent: str, namespace: str, session: str, text: str, body: Path) -> dict[str, object]:
    body.write_text(json.dumps({"content": text}))
    path = (
        f"/api/v1/namespaces/{namespace}/services/{agent}:80/proxy/v1/sessions/{session}/messages"
    )
    print(f"$ kubectl create --raw {path} -f {body.name}", flush=True)
    reply: dict[str, object] = json.loads(kubectl("create", "--raw", path, "-f", str(body)))
    return reply


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("agent")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--session", default="shared-session")
    parser.add_argument("--max-turns", type=int, default=8)
    args = parser.parse_args(argv)
    pods: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "body.json"
        for number in range(1, args.max_turns + 1):
            before = posts_by_pod(args.agent, args.namespace)
            reply = turn(args.agent, args.namespace, args.session, f"Turn {number} here.", body)
            after = posts_by_pod(args.agent, args.namespace)
            pod = next((p for p, n in after.items() if n > before.get(p, 0)), "")
            if not pod:
                print("error: no pod logged this turn's request (is the log level above info?)")
                return 1
            pods.append(pod)
            print(f"  turn {reply['turn']} answered by pod {pod}: {reply['reply']}", flush=True)
            if reply["turn"] != number:
                print(f"error: expected turn {number}: the session's memory was lost")
                return 1
            if number > 1 and pod != pods[0]:
                print(
                    f"Turn 1 was answered by {pods[0]} and turn {number} by {pod}: any replica "
                    "serves the session, because its memory is in PostgreSQL."
                )
                return 0
    print(f"every turn landed on {pods[0]} (the Service chose it {len(pods)} times)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
