"""The `Cluster` protocol on the sync `kubernetes` client, and kubeconfig loading.

This is the only module that talks to the API server. It turns the client's
exceptions into one-line `CliError`s: not found, forbidden, unreachable.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn, cast

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from . import agents
from .cluster import HttpReply, LogOptions, Obj, StreamReply
from .errors import Forbidden, NotFound, OperationFailed, Unreachable

# Connect and read timeouts for ordinary requests (seconds).
REQUEST_TIMEOUT = (5.0, 60.0)
# `logs -f` waits for lines without a limit; the client's validation refuses a `None`
# read timeout, so it gets one longer than anyone follows a log (seven days of silence).
FOLLOW_TIMEOUT = (REQUEST_TIMEOUT[0], 7 * 24 * 3600.0)
IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
MERGE_PATCH = "application/merge-patch+json"


def connect(kubeconfig: str | None, context: str | None) -> KubeCluster:
    """Load the kubeconfig (or in-cluster credentials) the way kubectl would."""
    configuration = client.Configuration()
    namespace = "default"
    try:
        cast(Any, config).load_kube_config(
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
        namespace = _context_namespace(kubeconfig, context) or namespace
    except (ConfigException, OSError) as error:
        if kubeconfig or context or not _in_cluster():
            raise Unreachable(_config_message(error, kubeconfig, context)) from None
        cast(Any, config).load_incluster_config(client_configuration=configuration)
        with contextlib.suppress(OSError):
            namespace = IN_CLUSTER_NAMESPACE.read_text().strip() or namespace
    configuration.retries = 1  # fail fast when nothing listens; the user can rerun
    return KubeCluster(client.ApiClient(configuration), namespace)


def _in_cluster() -> bool:
    return "KUBERNETES_SERVICE_HOST" in os.environ


def _context_namespace(kubeconfig: str | None, context: str | None) -> str | None:
    contexts, current = cast(Any, config).list_kube_config_contexts(config_file=kubeconfig)
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else None


def _config_message(error: Exception, kubeconfig: str | None, context: str | None) -> str:
    text = str(error).strip().rstrip(".")
    if context and "Expected object with name" in text:
        return f'context "{context}" not found in the kubeconfig'

    if "No configuration found" in text or isinstance(error, FileNotFoundError):
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        return f"no Kubernetes configuration found at {where}: set KUBECONFIG or pass --kubeconfig"
    return f"cannot use the kubeconfig: {text}"


class KubeCluster:
    """`Cluster` backed by a `kubernetes.client.ApiClient`."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self._namespace = namespace
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.coordination = client.CoordinationV1Api(api)

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def host(self) -> str:
        return str(self.api.configuration.host)

    def _plain(self, value: Any) -> Any:
        """A client model as the API's JSON (camelCase keys, RFC 3339 times)."""
        return cast(Any, self.api).sanitize_for_serialization(value)

    def get_agent(self, namespace: str, name: str) -> Obj:
        with self._errors("Agent", name, namespace):
            found = self.custom.get_namespaced_custom_object(
                agents.GROUP,
                agents.VERSION,
                namespace,
                agents.PLURAL,
                name,
                _request_timeout=REQUEST_TIMEOUT,
            )
        return _as_obj(found)

    def patch_agent(self, namespace: str, name: str, patch: Obj) -> Obj:
        with self._errors("Agent", name, namespace):
            patched = self.custom.patch_namespaced_custom_object(
                agents.GROUP,
                agents.VERSION,
                namespace,
                agents.PLURAL,
                name,
                patch,
                _content_type=MERGE_PATCH,
                _request_timeout=REQUEST_TIMEOUT,
            )
        return _as_obj(patched)

    def list_leases(self, namespace: str) -> list[Obj]:
        with self._errors("Lease", "", namespace):
            found = self.coordination.list_namespaced_lease(
                namespace, _request_timeout=REQUEST_TIMEOUT
            )
        return list(self._plain(found).get("items") or [])

    def list_pods(self, namespace: str, label_selector: str) -> list[Obj]:
        with self._errors("Pod", "", namespace):
            found = self.core.list_namespaced_pod(
                namespace, label_selector=label_selector, _request_timeout=REQUEST_TIMEOUT
            )
        return list(self._plain(found).get("items") or [])

    def read_log(self, namespace: str, pod: str, options: LogOptions) -> str:
        with self._errors("Pod", pod, namespace):
            text = self.core.read_namespaced_pod_log(
                pod,
                namespace,
                timestamps=True,
                **_log_params(options),
                _request_timeout=REQUEST_TIMEOUT,
            )
        return str(text)

    def follow_log(self, namespace: str, pod: str, options: LogOptions) -> Iterator[str]:
        with self._errors("Pod", pod, namespace):
            response: Any = cast(Any, self.core).read_namespaced_pod_log(
                pod,
                namespace,
                timestamps=True,
                follow=True,
                **_log_params(options),
                _preload_content=False,
                _request_timeout=FOLLOW_TIMEOUT,
            )
        try:
            pending = b""
            for chunk in response.stream(4096):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", errors="replace")
            if pending:
                yield pending.decode("utf-8", errors="replace")
        except (urllib3.exceptions.HTTPError, OSError):
            return  # the container stopped or the connection closed: this stream is over
        finally:
            response.release_conn()

    def get_statefulset(self, namespace: str, name: str) -> Obj:
        with self._errors("StatefulSet", name, namespace):
            found = self.apps.read_namespaced_stateful_set(
                name, namespace, _request_timeout=REQUEST_TIMEOUT
            )
        return dict(self._plain(found))

    def patch_statefulset(self, namespace: str, name: str, patch: Obj) -> Obj:
        with self._errors("StatefulSet", name, namespace):
            patched = self.apps.patch_namespaced_stateful_set(
                name,
                namespace,
                patch,
                _content_type=MERGE_PATCH,
                _request_timeout=REQUEST_TIMEOUT,
            )
        return dict(self._plain(patched))

    def get_secret(self, namespace: str, name: str) -> Obj:
        with self._errors("Secret", name, namespace):
            found = self.core.read_namespaced_secret(
                name, namespace, _request_timeout=REQUEST_TIMEOUT
            )
        return dict(self._plain(found))

    def patch_secret(self, namespace: str, name: str, patch: Obj) -> Obj:
        with self._errors("Secret", name, namespace):
            patched = self.core.patch_namespaced_secret(
                name,
                namespace,
                patch,
                _content_type=MERGE_PATCH,
                _request_timeout=REQUEST_TIMEOUT,
            )
        return dict(self._plain(patched))

    def create_secret(self, namespace: str, body: Obj) -> Obj:
        name = str(body["metadata"]["name"])
        with self._errors("Secret", name, namespace):
            # The client serialises a plain dict as it is (its model type is not needed).
            created = self.core.create_namespaced_secret(
                namespace, cast(Any, body), _request_timeout=REQUEST_TIMEOUT
            )
        return dict(self._plain(created))

    def post_through_proxy(
        self, namespace: str, target: str, port: str, path: str, body: Obj, headers: dict[str, str]
    ) -> HttpReply:
        """POST JSON through `/api/v1/namespaces/<ns>/<target>:<port>/proxy/<path>`, where
        target is `services/<name>` or `pods/<name>`; the whole answer."""
        reply = self.stream_through_proxy(
            namespace, target, port, path, body, headers, accept="application/json"
        )
        return HttpReply(reply.status, reply.reason, b"".join(reply.lines), reply.headers)

    def get_through_proxy(
        self, namespace: str, target: str, port: str, path: str, headers: dict[str, str]
    ) -> HttpReply:
        """GET through the proxy like `post_through_proxy`; the whole answer."""
        reply = self.stream_through_proxy(
            namespace, target, port, path, None, headers, accept="application/json", method="GET"
        )
        return HttpReply(reply.status, reply.reason, b"".join(reply.lines), reply.headers)

    def stream_through_proxy(
        self,
        namespace: str,
        target: str,
        port: str,
        path: str,
        body: Obj | None,
        headers: dict[str, str],
        accept: str = "text/event-stream",
        method: str = "POST",
    ) -> StreamReply:
        """POST like `post_through_proxy`, asking for server-sent events; the reply's lines
        are read as they arrive (the proxy relays a streamed body as it comes)."""
        resource = f"/api/v1/namespaces/{namespace}/{target}:{port}/proxy/{path.lstrip('/')}"
        # A chunked body, not a Content-Length one: over HTTP/1.1 the API server's proxy
        # (Go's ReverseProxy) drops its connection to the pod, cutting the answer, when the
        # pod answers before the proxy has checked the body's end (golang/go#40747); a
        # chunked body ends before the pod can answer. docs/protocols.md has the details.
        header_params = {"Accept": accept}
        if body is not None:
            header_params.update(
                {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
            )
        header_params.update(headers)
        request = self.api.param_serialize(
            method, resource, header_params=header_params, body=body, auth_settings=["BearerToken"]
        )
        kind, _, name = target.partition("/")
        kind = "Service" if kind == "services" else "Pod"
        with self._errors(kind, name, namespace):
            response: Any = self.api.call_api(*request, _request_timeout=REQUEST_TIMEOUT)
        raw = response.response  # urllib3's response, not read yet

        def lines() -> Iterator[bytes]:
            with self._errors(kind, name, namespace):
                try:
                    yield from raw
                finally:
                    raw.release_conn()

        return StreamReply(
            status=int(response.status),
            reason=str(response.reason or ""),
            headers={str(k): str(v) for k, v in dict(response.headers or {}).items()},
            lines=lines(),
        )

    @contextlib.contextmanager
    def _errors(self, kind: str, name: str, namespace: str) -> Iterator[None]:
        try:
            yield
        except ApiException as error:
            _raise_api_error(error, kind, name, namespace)
        except urllib3.exceptions.HTTPError as error:
            reason = getattr(error, "reason", None) or error
            raise Unreachable(
                f"cannot reach the Kubernetes API server at {self.host}: {_short(reason)}"
            ) from None


def _as_obj(value: object) -> Obj:
    if not isinstance(value, dict):
        raise OperationFailed(f"unexpected answer from the API server: {type(value).__name__}")
    return cast(Obj, value)


def _log_params(options: LogOptions) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if options.container:
        params["container"] = options.container
    if options.since_seconds is not None:
        params["since_seconds"] = options.since_seconds
    if options.previous:
        params["previous"] = True
    if options.tail_lines is not None:
        params["tail_lines"] = options.tail_lines
    return params


def _raise_api_error(error: ApiException, kind: str, name: str, namespace: str) -> NoReturn:
    status = int(error.status or 0)
    body = _status_body(error.body)
    message = str(body.get("message") or "").strip()
    if status == 404:
        if kind == "Agent" and not (body.get("details") or {}).get("name"):
            raise NotFound(
                f"the resource {agents.RESOURCE} is not served by this cluster: "
                "install the Agentry CRD (Helm chart charts/agentry)"
            )
        raise NotFound(f'{kind} "{name}" not found in namespace "{namespace}"')
    if status == 401:
        raise Forbidden("unauthorized: the API server did not accept the kubeconfig's credentials")
    if status == 403:
        raise Forbidden(message or f"forbidden: {kind} {name!r} in namespace {namespace!r}")
    detail = message or _short(error.body or error.reason or "")
    raise OperationFailed(f"API server answered {status} {error.reason or ''}: {detail}".strip())


def _status_body(text: Any) -> dict[str, Any]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        return {}
    try:
        parsed = json.loads(text)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _short(value: object) -> str:
    """The last, most specific part of a nested urllib3 message, on one line."""
    text = " ".join(str(value).split())
    if "Failed to establish a new connection:" in text:
        text = text.split("Failed to establish a new connection:", 1)[1]
    return text.strip(" ')\"")[:200]
