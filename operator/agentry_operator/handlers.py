"""Every kopf decorator of the operator, in one place; each handler is a few lines.

`register(registry, settings)` wires the handlers into a registry (a fresh one per test).
Handlers validate the body into `Agent`, call `Reconciler`, and patch the status.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any, cast

import kopf
from pydantic import ValidationError

from agentry_operator import constants as c
from agentry_operator import credentials, metrics, readiness, watching
from agentry_operator.alerting import Notifier
from agentry_operator.guarding import Guardian
from agentry_operator.kube import Kube, KubeError
from agentry_operator.models import Agent, field_errors
from agentry_operator.reconcile import AlertState, ReconcileError, Reconciler, blocked_by
from agentry_operator.settings import OperatorSettings
from agentry_operator.status import (
    Blocked,
    StatusUpdate,
    invalid_spec_status,
    refused_generation,
    spec_is_invalid,
)
from agentry_operator.watches import Watches
from agentry_operator.watching import Children

logger = logging.getLogger(__name__)
RESOURCE = (c.GROUP, c.VERSION, c.PLURAL)


class QuietWatches(logging.Filter):
    """Drop kopf's "Handler 'watch-…' succeeded." line: it would be written for every
    event of every Agent (thousands while a fleet is created), costing CPU and hiding the
    lines that matter."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Handler 'watch-") and message.endswith("succeeded."))


def configure(settings: kopf.OperatorSettings) -> None:
    """kopf's own bookkeeping under agentry.dev: finalizer, progress and diff-base."""
    settings.persistence.finalizer = c.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=c.ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=c.ANNOTATION_PREFIX, key=watching.DIFF_BASE
    )
    kopf_objects = logging.getLogger("kopf.objects")
    if not any(isinstance(f, QuietWatches) for f in kopf_objects.filters):
        kopf_objects.addFilter(QuietWatches())
    # kopf watches the Agents only; the children and heartbeats are watched by the
    # operator's own streams (watches.py). An Agent gets a kopf worker per burst of
    # events; one that idles 5 s (the default) keeps a fleet's alive, and the heap with it.
    settings.queueing.idle_timeout = 1.0
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60


async def _write(
    update: StatusUpdate,
    patch: kopf.Patch | None,
    body: kopf.Body,
    key: str,
    previous: Any,
    kube: Kube | None = None,
) -> None:
    """Patch the status only when it changed: an idle Agent costs no write per tick.
    Through kopf's `patch` in handlers; with `kube` from an Agent's guard (guarding.py:
    its drift and status rounds are no kopf handlers, so there is no patch of kopf's)."""
    old = dict(previous or {})
    if any(old.get(name) != value for name, value in update.status.items()):
        if patch is not None:
            patch.status.update(update.status)
        elif kube is not None:
            namespace, name = key.split("/", 1)
            await kube.patch_status("Agent", namespace, name, update.status)
    for type_, reason, message in update.transitions:
        kopf.event(body, type=type_, reason=reason, message=message)
    metrics.set_phase(key, update.status["phase"])


def _converged_once(status: kopf.Status, **_: Any) -> bool:
    """The create (or resume) handler has written a status: the timers have work only then,
    and would compete with the handlers of a burst of new Agents otherwise."""
    return bool(status.get("phase"))


def _drifts(status: kopf.Status, meta: kopf.Meta, **_: Any) -> bool:
    """Converged once, and the spec of this generation is not one the models refuse."""
    return _converged_once(status) and not spec_is_invalid(status, meta.get("generation"))


def _polls_status(spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, **_: Any) -> bool:
    """False before the first converge, for a refused spec, and for a suspended Agent whose
    status already says Suspended for its generation: it has no pods and no heartbeats, so
    there is nothing to observe until the spec changes (an update handler writes the status
    then, and this timer starts again)."""
    if not _drifts(status, meta):
        return False
    settled = (
        bool(spec.get("suspend"))
        and status.get("phase") == "Suspended"
        and status.get("observedGeneration") == meta.get("generation")
    )
    return not settled


async def _validated(
    body: kopf.Body, patch: kopf.Patch, rec: Reconciler, status: Any
) -> Agent | None:
    """The Agent, or None after recording Ready=False/InvalidSpec for a spec that got past
    the CRD but not the models. Returning (not raising) ends kopf's handling: retries would
    fail the same way, and a changed spec runs the update handler anyway."""
    try:
        return Agent.from_body(body)
    except ValidationError as exc:
        meta = body.get("metadata", {})
        generation = int(meta.get("generation") or 0)
        update = invalid_spec_status(dict(status or {}), field_errors(exc), generation, rec.now())
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        await _write(update, patch, body, key, status)
        logger.warning("Agent %s: invalid spec: %s", key, update.status["conditions"][0]["message"])
        return None


def _agent_to_delete(body: kopf.Body) -> Agent:
    """The Agent being deleted; with a spec the models refuse, its defaults, whose
    retainOnDelete=true keeps state and keys: the safe side when the spec cannot be read."""
    try:
        return Agent.from_body(body)
    except ValidationError:
        return Agent.model_validate({"metadata": dict(body.get("metadata", {}))})


def _alerts(memo: kopf.Memo, reconciler: Reconciler, agent: Agent, status: Any) -> AlertState:
    state = memo.get("alerts")
    if not isinstance(state, AlertState):
        state = reconciler.alert_state(agent, dict(status or {}))
        memo["alerts"] = state
    return state


@contextlib.contextmanager
def _seen(catch_up: readiness.CatchUp, body: kopf.Body) -> Iterator[None]:
    """Count the Agent as handled once its handler has run, whether it succeeded or not."""
    try:
        yield
    finally:
        meta = body.get("metadata", {})
        catch_up.handled(f"{meta.get('namespace')}/{meta.get('name')}")


def _agent_lister(kube: Kube, namespaces: list[str]) -> readiness.ListAgents:
    """`namespace/name` of every Agent in the watched namespaces (or the whole cluster)."""

    async def agents() -> set[str]:
        found = []
        if namespaces:
            for namespace in namespaces:
                found.extend(await kube.list("Agent", namespace))
        else:
            found = await kube.list_everywhere("Agent")
        return {f"{a['metadata']['namespace']}/{a['metadata']['name']}" for a in found}

    return agents


def _blocked(memo: kopf.Memo) -> Blocked | None:
    """What stopped the last converge, kept so the status timer does not paper over it."""
    value = memo.get("blocked")
    return value if isinstance(value, Blocked) else None


def register(
    registry: kopf.OperatorRegistry,
    settings: OperatorSettings,
    *,
    notifier: Notifier | None = None,
    reconciler: Reconciler | None = None,
) -> None:
    """Add the operator's handlers to `registry`."""
    catch_up = readiness.CatchUp()
    children = Children(settings)
    guardian = Guardian(
        children, settings.drift_interval_seconds, status_interval=settings.status_interval_seconds
    )

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
        configure(settings)
        rec = reconciler or Reconciler(
            kube=await Kube.connect(
                operator_settings.kubeconfig,
                qps=operator_settings.api_qps,
                burst=operator_settings.api_burst,
            ),
            settings=operator_settings,
            notifier=notifier
            or Notifier(
                retries=operator_settings.webhook_retries,
                backoff_seconds=operator_settings.webhook_backoff_seconds,
            ),
        )
        if rec.observed is None:
            rec.observed = children.seen
        memo["reconciler"] = rec
        # Every first list complete before kopf starts the Agents' handlers: the guards'
        # count of the children and the status's heartbeats are never short.
        watches = memo["watches"] = Watches(rec.kube, children, operator_settings.watch_namespaces)
        watches.start()
        await watches.synced()
        if operator_settings.readiness_port:
            agents = _agent_lister(rec.kube, operator_settings.watch_namespaces)
            await readiness.refresh(catch_up, agents)
            memo["readiness"] = await readiness.serve(
                catch_up, agents, operator_settings.readiness_port
            )

    operator_settings = settings

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        rec: Reconciler = memo["reconciler"]
        await guardian.stop()
        if "watches" in memo:
            await memo["watches"].stop()
        if "readiness" in memo:
            await memo["readiness"].cleanup()
        await rec.notifier.drain()
        await rec.kube.close()

    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.ConnectionInfo:
        # The same credentials as the operator's client; kopf asks again after a 401,
        # which reads a rotated service-account token.
        return credentials.login(operator_settings.kubeconfig).info

    @kopf.on.probe(id="agents", registry=registry)
    async def agents_probe(**_: Any) -> int:
        return len(metrics._phases)

    @kopf.on.create(*RESOURCE, registry=registry)
    async def create(
        body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, status: Any, **_: Any
    ) -> None:
        rec: Reconciler = memo["reconciler"]
        with _seen(catch_up, body):
            agent = await _validated(body, patch, rec, status)
            if agent is None:
                return
            # A deleted Agent of the same name may have left state behind: adopted first.
            await _reconcile(agent, rec, body, patch, memo, status, new=True, adopt=True)

    @kopf.on.update(*RESOURCE, registry=registry)
    @kopf.on.resume(*RESOURCE, registry=registry)
    async def update(
        body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, status: Any, **_: Any
    ) -> None:
        rec: Reconciler = memo["reconciler"]
        with _seen(catch_up, body):
            agent = await _validated(body, patch, rec, status)
            if agent is None:
                return
            # Created with a refused spec, the create handler never adopted retained state.
            adopt = refused_generation(status) is not None
            await _reconcile(agent, rec, body, patch, memo, status, adopt=adopt)

    @kopf.on.delete(*RESOURCE, registry=registry)
    async def delete(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        agent = _agent_to_delete(body)
        with _seen(catch_up, body), metrics.timed("finalize"):
            await memo["reconciler"].finalize(agent)
        metrics.set_phase(f"{agent.namespace}/{agent.name}", None)

    @kopf.on.event(*RESOURCE, id="watch-agents", registry=registry)
    async def agent_event(
        type: str | None,
        body: kopf.Body,
        memo: kopf.Memo,
        spec: Any,
        status: Any,
        meta: Any,
        **_: Any,
    ) -> None:
        """Each Agent's guard starts once it converged with a spec the models accept, and
        stops when that no longer holds or the Agent is being deleted; its status ticks
        while `_polls_status` says so."""
        key = (str(meta.get("namespace")), str(meta.get("name")))
        going = type == "DELETED" or bool(meta.get("deletionTimestamp"))
        guarded = not going and _drifts(status=status, meta=meta)
        polled = guarded and _polls_status(spec=spec, status=status, meta=meta)
        guardian.track(key, watching.slim_agent(body), memo, guarded=guarded, polled=polled)
        # Started from a handler, not at startup: its rounds post Kubernetes events
        # (kopf.event), which needs the context kopf gives the tasks that handle objects.
        guardian.start(guard_round, status_round)

    async def guard_round(
        guard: watching.Guard, *, woken: bool, retry: bool, read_secret: bool
    ) -> bool:
        body, memo = cast(kopf.Body, guard.body), cast(kopf.Memo, guard.memo)
        return await _guard_round(
            body, memo, children, woken=woken, retry=retry, read_secret=read_secret
        )

    async def status_round(guard: watching.Guard) -> None:
        await _status_round(cast(kopf.Body, guard.body), cast(kopf.Memo, guard.memo))


async def _status_round(body: kopf.Body, memo: kopf.Memo) -> None:
    """One status tick: the watched StatefulSet and heartbeats turned into status, written
    only when it changed."""
    rec: Reconciler = memo["reconciler"]
    try:
        agent = Agent.from_body(body)
    except ValidationError:
        return  # the update handler records InvalidSpec; its event stops this guard
    status = body.get("status")
    alerts = _alerts(memo, rec, agent, status)
    key = f"{agent.namespace}/{agent.name}"
    try:
        with metrics.timed("status"):
            update = await rec.observe(agent, dict(status or {}), alerts, blocked=_blocked(memo))
        await _write(update, None, body, key, status, rec.kube)
    except KubeError as exc:
        if not rec.kube.closing:
            logger.warning("Agent %s: status not written: %s", key, exc)


async def _guard_round(
    body: kopf.Body,
    memo: kopf.Memo,
    children: Children,
    *,
    woken: bool,
    retry: bool,
    read_secret: bool = True,
) -> bool:
    """One round of an Agent's guard; True when it failed and should run again soon.
    Without `read_secret` the safety net only counts the children seen (no request). A
    blocked Agent converges at every tick: what blocked it (a missing key Secret, a
    foreign object) may be gone without any watched event, as when the Secret is restored."""
    rec: Reconciler = memo["reconciler"]
    try:
        agent = Agent.from_body(body)
    except ValidationError:
        return False  # the update handler records InvalidSpec; its event stops this guard
    if memo.get("namespace_going"):
        return False  # a namespace being deleted is never undeleted
    cause = "watch" if woken else "retry" if retry else "safety-net"
    try:
        unseen = children.unseen(agent)
        if cause == "safety-net" and not (
            unseen
            or _blocked(memo) is not None
            or (read_secret and await rec.safety_net_finds_drift(agent, unseen))
        ):
            return False
        metrics.DRIFT_WAKEUPS.labels(cause).inc()
        with metrics.timed("drift"):
            await _reconcile(
                agent, rec, body, None, memo, body.get("status"), retry_when_blocked=False
            )
    except (kopf.TemporaryError, KubeError) as exc:
        if rec.kube.closing:
            return False  # the operator is stopping: the guardian stops next
        if _namespace_going(exc):
            # Its children go with the namespace, and so will the Agent: nothing to put
            # back, and a warning per deleted child would only bury real ones.
            if not memo.get("namespace_going"):
                memo["namespace_going"] = True
                logger.info(
                    "Agent %s/%s: its namespace is being deleted", agent.namespace, agent.name
                )
            return False
        logger.warning("Agent %s/%s: drift not put back yet: %s", agent.namespace, agent.name, exc)
        return True
    return False


def _namespace_going(exc: BaseException) -> bool:
    """A refusal (direct, or the cause of kopf's retry) because the namespace is going."""
    cause = exc if isinstance(exc, KubeError) else exc.__cause__
    return isinstance(cause, KubeError) and cause.namespace_terminating


async def _reconcile(
    agent: Agent,
    rec: Reconciler,
    body: kopf.Body,
    patch: kopf.Patch | None,
    memo: kopf.Memo,
    status: Any,
    *,
    new: bool = False,
    adopt: bool = False,
    retry_when_blocked: bool = True,
) -> None:
    """Converge and write the status (through `patch`, or the client when None). A
    blocked Agent says why in the status and in `memo` (where the status timer finds it
    until a converge succeeds) and, from a handler, is retried in 30 s; the children's
    guard tries again when a child changes or at its next safety-net tick. `adopt`: take
    back the state a deleted namesake left behind (see `Reconciler.converge`)."""
    previous = dict(status or {})
    alerts = _alerts(memo, rec, agent, status)
    key = f"{agent.namespace}/{agent.name}"
    try:
        with metrics.timed("converge"):
            sts = await rec.converge(agent, new=new, status=previous, adopt=adopt)
    except ReconcileError as exc:
        memo["blocked"] = blocked_by(exc)
        update = await rec.observe(agent, previous, alerts, blocked=memo["blocked"])
        await _write(update, patch, body, key, previous, rec.kube)
        if retry_when_blocked:
            raise kopf.TemporaryError(str(exc), delay=30) from exc
        return
    except KubeError as exc:
        raise kopf.TemporaryError(str(exc), delay=10) from exc
    memo["blocked"] = None
    update = await rec.observe(agent, previous, alerts, statefulset=sts)
    await _write(update, patch, body, key, previous, rec.kube)
