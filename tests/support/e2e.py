"""Helpers for end-to-end tests on the local cluster: polling, JSON reads via kubectl, and
HTTP to an Agent's Service through the API server's proxy."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 1.0) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached in {timeout}s (last: {last!r})")


def get_json(cluster: Any, *args: str) -> Any:
    """`kubectl get ... -o json` as a dict, or None when the object is not there."""
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def is_ready(pod: dict[str, Any]) -> bool:
    """Whether a pod's Ready condition is True."""
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


@dataclass(frozen=True)
class ProxyReply:
    """What a client got back through the API server's service proxy."""

    status: int
    headers: dict[str, str]
    body: Any


class ServiceProxy:
    """HTTP to an Agent's Service through the API server's proxy, as
    `kubectl create --raw /api/v1/namespaces/NS/services/NAME:80/proxy/...` sends it, but
    with the status and headers kept (kubectl prints only a body or an error)."""

    def __init__(self, cluster: Any, namespace: str, service: str) -> None:
        pki = Path(cluster.state_dir) / "pki"
        self._context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self._context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        server = str(cluster.info["server"]).rstrip("/")
        self.base = f"{server}/api/v1/namespaces/{namespace}/services/{service}:80/proxy"

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> ProxyReply:
        # An iterable body goes out chunked: the proxy cuts a Content-Length POST over
        # HTTP/1.1 when the pod answers quickly (golang/go#40747, docs/protocols.md).
        data = None if body is None else iter([json.dumps(body).encode()])
        req = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, context=self._context, timeout=timeout) as resp:
                return ProxyReply(resp.status, dict(resp.headers.items()), _json(resp.read()))
        except urllib.error.HTTPError as err:
            return ProxyReply(err.code, dict(err.headers.items()), _json(err.read()))

    def turn(self, session: str, content: str, client: str = "e2e") -> ProxyReply:
        """POST one message to `session` as the client `client` (X-Client-ID)."""
        path = f"/v1/sessions/{urllib.parse.quote(session, safe='')}/messages"
        return self.request("POST", path, {"content": content}, {"X-Client-ID": client})

    def history(self, session: str) -> list[dict[str, Any]]:
        """The session's messages, every page of them."""
        messages: list[dict[str, Any]] = []
        path = f"/v1/sessions/{urllib.parse.quote(session, safe='')}"
        after: int | None = 0
        while after is not None:
            reply = self.request("GET", f"{path}?limit=1000&after={after}")
            assert reply.status == 200, reply
            messages.extend(reply.body["messages"])
            after = reply.body.get("next")
        return messages


def pod_request(
    method: str,
    url: str,
    body: Any = None,
    *,
    client: str | None = None,
    timeout: float = 10.0,
) -> ProxyReply:
    """One HTTP call straight to a pod's runtime (the host reaches pod IPs on the node's
    bridge), as client `client` (X-Client-ID) when given. An error status is an answer,
    not an exception: the tests check refusals as closely as replies."""
    headers = {"Content-Type": "application/json"}
    if client is not None:
        headers["X-Client-ID"] = client
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return ProxyReply(resp.status, dict(resp.headers.items()), _json(raw) if raw else None)
    except urllib.error.HTTPError as err:
        raw = err.read()
        return ProxyReply(err.code, dict(err.headers.items()), _json(raw) if raw else None)


def pod_turn(
    base: str, session: str, content: str, *, client: str | None = None, timeout: float = 15.0
) -> ProxyReply:
    """POST one message to `session` of the runtime at `base` (`http://<pod IP>:8080`)."""
    path = f"/v1/sessions/{urllib.parse.quote(session, safe='')}/messages"
    return pod_request("POST", base + path, {"content": content}, client=client, timeout=timeout)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


def eventually(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll `check` until it returns something truthy, taking an exception (a server not
    answering yet) as not yet; fail naming `what` and the last value or error."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # the condition is not met yet
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


def get_url_json(url: str, timeout: float = 10.0) -> Any:
    """The JSON body of a GET on `url` (a pod's IP, from the host)."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def container_pid(pod: dict[str, Any], marker: bytes) -> int:
    """The host pid of the process of `pod` whose command line holds `marker` (the process
    node reports the container's leader pid as its container id, process://PID)."""
    container_id = pod["status"]["containerStatuses"][0]["containerID"]
    assert container_id.startswith("process://"), container_id
    leader = int(container_id.removeprefix("process://"))
    # The node execs the command in place, but look at the leader's children too.
    candidates = [leader] + [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _parent_of(int(entry.name)) == leader
    ]
    for pid in candidates:
        if marker in _cmdline(pid):
            return pid
    raise AssertionError(f"no {marker.decode()} process under pid {leader}")


def _parent_of(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    return int(stat.rsplit(")", 1)[1].split()[1])


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
