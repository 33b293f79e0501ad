"""The domain steps behind the handlers: converge children, observe status, finalize.

Handlers call these with a validated `Agent`; this module calls the pure builders and
`Kube` and never touches kopf, so the same steps run in kmock tests and on a cluster.
Data flows one way: Agent → builders → Kube.apply → observe → status.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agentry_operator import builders
from agentry_operator import constants as c
from agentry_operator.alerting import ErrorWindow, Incident, Notifier, payload
from agentry_operator.keyrings import (
    Ring,
    checkpoint_key_ids,
    given_ring,
    hold_reason,
    missing_message,
    needed_key_ids,
    ring_annotations,
    ring_of,
    row_key_ids,
)
from agentry_operator.keystate import (
    SealedState,
    StateObjects,
    is_state_config_map,
    sealed_state,
    sealed_state_of,
    set_aside,
    state_objects,
)
from agentry_operator.kube import Applied, Kube, KubeError
from agentry_operator.models import Agent
from agentry_operator.ownership import (
    Conflict,
    NameConflict,
    check,
    claim,
    guard_for,
    holder,
)
from agentry_operator.seen import Seen
from agentry_operator.settings import OperatorSettings
from agentry_operator.status import (
    ALERTING,
    Blocked,
    Heartbeat,
    Observation,
    StatusUpdate,
    compute_status,
    parse_heartbeat,
)
from agentry_operator.watching import key_secret_drifted

logger = logging.getLogger(__name__)


class ReconcileError(Exception):
    """The Agent cannot converge until something outside the operator changes.

    `reason` becomes the Ready condition's reason; `pods_serve` says the running pods were
    left alone and keep serving (phase Degraded rather than Failed).
    """

    reason = "ReconcileFailed"
    pods_serve = False


def blocked_by(exc: ReconcileError) -> Blocked:
    """The status form of a reconcile error."""
    return Blocked(exc.reason, str(exc), pods_serve=exc.pods_serve)


class KeysMissingError(ReconcileError):
    """The generated key Secret is gone while sealed state needs it: no key is made."""

    reason = "KeysMissing"
    pods_serve = True


class KeyRollHeldError(ReconcileError):
    """The key Secret changed so that new pods could not read the state: no roll."""

    reason = "KeyRollHeld"
    pods_serve = True


class FreshStartPendingError(ReconcileError):
    """A fresh start was accepted; the pods stop before their state is set aside."""

    reason = "FreshStartPending"
    pods_serve = True


class ConnectionSecretMissingError(ReconcileError):
    """The postgres backend's connection Secret or its key is missing: pods that already
    run keep the URL they started with; new ones could not start, so none is rolled."""

    reason = "ConnectionSecretMissing"
    pods_serve = True


class StatefulSetReplacingError(ReconcileError):
    """The StatefulSet is being re-created for a changed immutable field; its pods run on."""

    reason = "StatefulSetReplacing"
    pods_serve = True


class NameConflictError(ReconcileError):
    """Objects with the names of this Agent's children belong to someone else."""

    reason = "NameConflict"

    def __init__(self, agent: Agent, conflicts: list[Conflict]) -> None:
        names = ", ".join(conflict.describe() for conflict in conflicts)
        super().__init__(
            f"{names} already exist in namespace {agent.namespace} and are not controlled by "
            f"Agent {agent.name}; the operator leaves them untouched. Rename the Agent, or "
            "delete or rename those objects"
        )
        self.conflicts = conflicts


ZERO_REPLICAS = {"spec": {"replicas": 0}}
RECREATE_POLLS = 20
RECREATE_POLL_SECONDS = 0.5


async def _nothing() -> None:
    """A step with nothing to do, where `_settled` takes a fixed number of steps."""


async def _settled(*steps: Awaitable[Any]) -> list[Any]:
    """Run the steps side by side and let every one finish; then raise the error of the
    first one (in the order given) that failed, as running them one after the other
    would have, or return their results in that order."""
    results = await asyncio.gather(*steps, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def _governed_elsewhere(live_sts: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """A StatefulSet made before the headless `<agent>-pods` Service existed names the
    client Service; serviceName cannot be patched, so the object must be re-created."""
    live_name = (live_sts.get("spec") or {}).get("serviceName")
    return bool(live_name) and live_name != desired["spec"]["serviceName"]


@dataclass(frozen=True)
class KeySecret:
    """The key ring the pods get; `fresh` after an accepted fresh start (the old state is
    set aside, so no roll is held); `set_aside` names that fresh start for the runtime;
    `created` when this converge wrote the Secret (no pod can have started on it yet)."""

    ring: Ring
    fresh: bool = False
    set_aside: str = ""
    created: bool = False


@dataclass
class AlertState:
    """Per-Agent alerting memory kept between status ticks.

    `lock` orders the observations: the status timer, the drift timer and the handlers all
    observe the same Agent, and a read of older heartbeats evaluated after a newer one
    looked like a pod restart, counted its errors again and re-fired a resolved alert."""

    window: ErrorWindow
    incident: Incident = field(default_factory=Incident)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class Reconciler:
    """Everything the handlers need, built once at startup."""

    kube: Kube
    settings: OperatorSettings
    notifier: Notifier = field(default_factory=Notifier)
    monotonic: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    random_bytes: Callable[[int], bytes] = secrets.token_bytes
    # At most settings.max_converging Agents converge at once. Without a bound, 1,000
    # Agents applied together run 1,000 handlers side by side: a connection each (up to
    # the client's pool of 100), every response held at once, and none finishes before
    # the others. None: that many (tests pass a semaphore of their own).
    converging: asyncio.Semaphore | None = None
    _converging: asyncio.Semaphore = field(init=False, repr=False)
    # What the watches feed (StatefulSets, heartbeat Leases); the status reads it instead
    # of a GET per object. None (tests of single steps): read with GETs.
    observed: Seen | None = None

    def __post_init__(self) -> None:
        bound = self.converging or asyncio.Semaphore(self.settings.max_converging)
        self._converging = bound

    # ---- converge -------------------------------------------------------------------------

    async def converge(
        self,
        agent: Agent,
        *,
        new: bool = False,
        status: Mapping[str, Any] | None = None,
        adopt: bool = False,
    ) -> dict[str, Any]:
        """Create or put back every child; returns the live StatefulSet.

        `new` (the create handler): the children are most likely absent, so each is
        created first and read only when it turns out to exist. `status` is the Agent's
        current status: its last checkpoint names a key id the state needs. `adopt`:
        first take back the state a deleted Agent of the same name left behind.
        """
        async with self._converging:
            return await self._converge(agent, new, status or {}, adopt)

    async def _converge(
        self, agent: Agent, new: bool, status: Mapping[str, Any], adopt: bool
    ) -> dict[str, Any]:
        # Children that do not depend on each other are written side by side: a new
        # Agent waits for 5 round trips (Role then RoleBinding, or the state listed then
        # the key Secret; the config ConfigMap; the StatefulSet; the Service), which under
        # a busy API server (150 ms a request) is what bounds how many Agents converge per
        # second. A new Agent's children that need nothing else go in the first round.
        pdb = builders.build_pdb(agent)
        early = [*self._independent_children(agent), *([pdb] if pdb else [])] if new else []
        *access, (live_sts, keys, key_conflict), services, _ = await _settled(
            self._apply_or_note(agent, builders.build_service_account(agent), new),
            self._role_and_binding(agent, new),
            *(self._apply_or_note(agent, child, new) for child in early),
            self._statefulset_and_keys(agent, new, status, adopt),
            self._foreign_services(agent, created=new),
            self.check_connection_secret(agent),
        )
        conflicts: list[Conflict] = [
            *(conflict for found in access for conflict in found),
            *([key_conflict] if key_conflict else []),
            *services,
        ]
        # The Service comes last (its existence says "all children exist"), but a foreign
        # one (or a foreign `<agent>-pods`, which another Agent named so would own) must
        # stop the Agent before any pod runs: both were checked above, and every conflict
        # is named in one message instead of one per retry.
        if conflicts:
            raise NameConflictError(agent, conflicts)
        if not keys.fresh:
            if new and live_sts is None and not keys.created:
                # A create handler that found the key Secret already there is a retry, or
                # kopf ran it again on a stale body: pods may run on that Secret, so the
                # hold needs the ring they were given, which only the live StatefulSet has.
                live_sts = await self.kube.get("StatefulSet", agent.namespace, agent.name)
            rows = await self.row_keys(agent, live_sts)
            self.hold_unsafe_roll(agent, keys.ring, status, live_sts, rows)
        config_map = builders.build_config_map(agent)
        if keys.set_aside:
            config_map["data"]["AGENTRY_STATE_SET_ASIDE"] = keys.set_aside
        digest = builders.config_hash(config_map["data"], keys.ring)
        # The governing Service before its StatefulSet, so the pods' DNS names exist as
        # soon as the pods do; the pods start isolated: their NetworkPolicy exists first.
        # A new Agent's other children were written in the first round.
        others = [] if new else self._independent_children(agent)
        policy = builders.build_network_policy(agent, self.settings)
        await _settled(
            self._apply(agent, config_map, new),
            *(self._apply(agent, child, new) for child in others),
            self._delete_own(agent, "NetworkPolicy", agent.name, skip=new or policy is not None),
        )
        desired = builders.build_statefulset(
            agent, self.settings, digest, ring_annotations(keys.ring)
        )
        replaced = live_sts is not None and _governed_elsewhere(live_sts, desired)
        if replaced:
            await self._recreate_keeping_pods(agent, live_sts or {})
        sts = await self._apply(agent, desired, new or replaced)
        if not new:
            if pdb is not None:
                await self._apply(agent, pdb, new)
            else:
                await self._delete_own(agent, "PodDisruptionBudget", agent.name)
        # last: "all children exist"
        await self._apply(agent, builders.build_service(agent), new)
        return sts.obj

    def _independent_children(self, agent: Agent) -> list[dict[str, Any]]:
        """The children that depend on no other: the profile and limits ConfigMaps, the
        pods' governing Service and their NetworkPolicy (when wanted)."""
        policy = builders.build_network_policy(agent, self.settings)
        return [
            builders.build_profile_config_map(agent),
            builders.build_limits_config_map(agent),
            builders.build_pods_service(agent),
            *([policy] if policy is not None else []),
        ]

    async def _role_and_binding(self, agent: Agent, new: bool) -> list[Conflict]:
        """The Role, then its RoleBinding: the API server refuses a binding to a Role
        that does not exist yet (its escalation check reads the Role)."""
        conflicts = await self._apply_or_note(agent, builders.build_role(agent), new)
        return conflicts + await self._apply_or_note(agent, builders.build_role_binding(agent), new)

    async def _statefulset_and_keys(
        self, agent: Agent, new: bool, status: Mapping[str, Any], adopt: bool
    ) -> tuple[dict[str, Any] | None, KeySecret, Conflict | None]:
        """The live StatefulSet (not read for a new Agent) and the key Secret's ring, or
        the conflict a foreign key Secret is. `adopt`: the state is listed and adopted
        first, and that list also tells the key step whether sealed state exists."""
        live_sts, state = await _settled(
            _nothing() if new else self.kube.get("StatefulSet", agent.namespace, agent.name),
            self.adopt_state(agent) if adopt else _nothing(),
        )
        try:
            ring = await self.ensure_key_secret(agent, status, live_sts, state)
        except NameConflict as exc:
            return live_sts, KeySecret(Ring(None, ())), exc.conflict
        return live_sts, ring, None

    async def _foreign_services(self, agent: Agent, *, created: bool = False) -> list[Conflict]:
        """The Agent's two Service names, when someone else's objects hold them.
        `created`: the pods' Service was created (or found foreign) in the same round,
        so only the client Service, written last, is read here."""
        pods = () if created else (c.pods_service_name(agent.name),)
        names = (*pods, agent.name)
        found = await _settled(*(self.kube.get("Service", agent.namespace, n) for n in names))
        return [
            Conflict("Service", name, holder(service))
            for name, service in zip(names, found, strict=True)
            if service is not None and claim(service, agent.name, agent.metadata.uid) == "foreign"
        ]

    async def _recreate_keeping_pods(self, agent: Agent, live_sts: Mapping[str, Any]) -> None:
        """Delete the StatefulSet with its pods orphaned, so the one created next (with
        the new serviceName, which the API server will not change in place) adopts them:
        they keep serving, then roll to the new template as usual."""
        if claim(live_sts, agent.name, agent.metadata.uid) != "controlled":
            return
        logger.info(
            "re-creating StatefulSet %s/%s for serviceName %s; its pods keep running",
            agent.namespace,
            agent.name,
            c.pods_service_name(agent.name),
        )
        await self.kube.delete("StatefulSet", agent.namespace, agent.name, propagation="Orphan")
        # Garbage collection takes the orphan finalizer off within moments.
        for _ in range(RECREATE_POLLS):
            if await self.kube.get("StatefulSet", agent.namespace, agent.name) is None:
                return
            await asyncio.sleep(RECREATE_POLL_SECONDS)
        raise StatefulSetReplacingError(
            f"StatefulSet {agent.name} is being re-created with serviceName "
            f"{c.pods_service_name(agent.name)}; its pods keep running and are adopted next"
        )

    async def _apply(self, agent: Agent, child: Mapping[str, Any], new: bool) -> Applied:
        """`Kube.apply` that never writes to an object this Agent may not touch."""
        guard = guard_for(agent.name, agent.metadata.uid)
        try:
            return await self.kube.apply(child, likely_absent=new, guard=guard)
        except NameConflict as exc:
            raise NameConflictError(agent, [exc.conflict]) from None

    async def _apply_or_note(
        self, agent: Agent, child: Mapping[str, Any], new: bool
    ) -> list[Conflict]:
        """Apply, or return the conflict and go on (to report every conflict at once)."""
        try:
            await self._apply(agent, child, new)
        except NameConflictError as exc:
            return exc.conflicts
        return []

    async def _delete_own(self, agent: Agent, kind: str, name: str, *, skip: bool = False) -> None:
        """Delete a child only when this Agent controls it (`skip`: a new Agent has none)."""
        if skip:
            return
        live = await self.kube.get(kind, agent.namespace, name)
        if live is not None and claim(live, agent.name, agent.metadata.uid) == "controlled":
            await self.kube.delete(kind, agent.namespace, name)

    async def check_connection_secret(self, agent: Agent) -> None:
        """The postgres backend's Secret must exist and hold its key before a pod is built
        on it; read by name only, and only whether the key is there (never its value)."""
        postgres = agent.spec.state.postgres
        if agent.spec.state.backend != "postgres" or postgres is None:
            return
        ref = postgres.connection_secret_ref
        secret = await self.kube.get("Secret", agent.namespace, ref.name)
        where = "spec.state.postgres.connectionSecretRef"
        if secret is None:
            raise ConnectionSecretMissingError(
                f"{where}: Secret {ref.name!r} does not exist in namespace {agent.namespace}; "
                f"create it with key {ref.key!r} holding a postgresql:// URI"
            )
        if ref.key not in (secret.get("data") or {}) and ref.key not in (
            secret.get("stringData") or {}
        ):
            raise ConnectionSecretMissingError(
                f"{where}: Secret {ref.name!r} has no key {ref.key!r} (it should hold a "
                "postgresql:// URI)"
            )

    async def row_keys(self, agent: Agent, live_sts: Mapping[str, Any] | None) -> set[str]:
        """postgres: the key ids rows may still be sealed with, from the heartbeats of the
        pods the StatefulSet runs (empty on the other backends)."""
        if agent.spec.state.backend != "postgres" or live_sts is None:
            return set()
        running = int(((live_sts.get("spec") or {}).get("replicas")) or 0)
        beats = await self.heartbeats(agent, running)
        reports: list[int | None] = [beat.rows_under_old_keys for beat in beats]
        reports += [None] * (running - len(beats))  # a replica that has not reported
        return row_key_ids(given_ring(live_sts), reports)

    def hold_unsafe_roll(
        self,
        agent: Agent,
        ring: Ring,
        status: Mapping[str, Any],
        live_sts: Mapping[str, Any] | None,
        row_keys: set[str] | None = None,
    ) -> None:
        """Raise KeyRollHeldError when pods started on this key Secret could not read the
        state: an id it needs (a checkpoint's, the pods' active one, or on postgres one
        that rows may still be sealed with) is gone, or the ring itself is unusable."""
        needed = needed_key_ids(checkpoint_key_ids(status), given_ring(live_sts))
        needed |= row_keys or set()
        reason = hold_reason(builders.key_secret_name_for(agent), ring, needed)
        if reason:
            raise KeyRollHeldError(reason)

    async def ensure_key_secret(
        self,
        agent: Agent,
        status: Mapping[str, Any] | None = None,
        live_sts: Mapping[str, Any] | None = None,
        state: StateObjects | None = None,
    ) -> KeySecret:
        """The key Secret's ids; the generated one is created once and adopted, never
        rewritten, and never created while sealed state needs the one that is gone.

        `state` (listed for a new Agent): when it holds no sealed state, the first key is
        created without reading first; one that exists (a retry, or a Secret a deleted
        namesake left behind) is read only then, and handled as below."""
        name = builders.key_secret_name_for(agent)
        generated = name == c.keys_secret_name(agent.name)
        sealed = None if state is None else sealed_state_of(agent, status, live_sts, state)
        if generated and sealed is not None and not sealed.evidence:
            first = await self._first_key(agent)
            if first is not None:
                return first
        live = await self.kube.get("Secret", agent.namespace, name)
        if not generated:
            if live is None:
                raise ReconcileError(
                    f"spec.state.encryption.keySecretRef: Secret {name!r} does not exist"
                )
            return KeySecret(ring_of(live))
        if live is None:
            return await self._create_key_secret(agent, status or {}, live_sts, sealed)
        mine = claim(live, agent.name, agent.metadata.uid)
        check("Secret", live, agent.name, agent.metadata.uid)  # a foreign one: NameConflict
        labels = (live.get("metadata") or {}).get("labels") or {}
        if mine == "left-behind" or c.RETAINED_LABEL in labels:
            patch = {
                "metadata": {
                    "labels": {**c.labels(agent.name), c.RETAINED_LABEL: None},
                    "ownerReferences": [builders.owner_reference(agent)],
                }
            }
            live = await self.kube.patch("Secret", agent.namespace, name, patch)
        notes = (live.get("metadata") or {}).get("annotations") or {}
        return KeySecret(ring_of(live), set_aside=notes.get(c.SET_ASIDE_LABEL, ""))

    async def _first_key(self, agent: Agent) -> KeySecret | None:
        """Create the first key of an Agent without sealed state; None when a Secret of
        that name already exists (nothing written then)."""
        try:
            live = await self.kube.create(builders.build_key_secret(agent, self.random_bytes))
        except KubeError as exc:
            if exc.status != 409:
                raise
            return None
        if agent.metadata.annotations.get(c.ACCEPT_NEW_KEYS_ANNOTATION) is not None:
            await self._consume_accept(agent)
        return KeySecret(ring_of(live), created=True)

    async def _create_key_secret(
        self,
        agent: Agent,
        status: Mapping[str, Any],
        live_sts: Mapping[str, Any] | None,
        sealed: SealedState | None = None,
    ) -> KeySecret:
        """A first key, or a fresh start the user accepted; KeysMissing otherwise.
        `sealed`: the evidence already gathered (listed otherwise)."""
        if sealed is None:
            sealed = await sealed_state(self.kube, agent, status, live_sts)
        secret = builders.build_key_secret(agent, self.random_bytes)
        stamp = ""
        if sealed.evidence:
            if agent.metadata.annotations.get(c.ACCEPT_NEW_KEYS_ANNOTATION) != "true":
                name = builders.key_secret_name_for(agent)
                raise KeysMissingError(
                    missing_message(agent.name, name, sealed.needed, sealed.evidence)
                )
            await self._stop_pods(agent, live_sts)
            stamp = self.now().strftime("%Y%m%d-%H%M%S")
            moved = await set_aside(self.kube, sealed, stamp)
            secret["metadata"]["annotations"] = {c.SET_ASIDE_LABEL: stamp}
            logger.warning(
                "fresh start of %s/%s accepted: state set aside as %s (needs keys %s)",
                agent.namespace,
                agent.name,
                ", ".join(moved) or "pvc files (moved by the runtime)",
                ", ".join(sorted(sealed.needed)) or "unknown",
            )
        created = True
        try:
            live = await self.kube.create(secret)
        except KubeError as exc:
            if exc.status != 409:
                raise
            created = False
            live = await self.kube.get("Secret", agent.namespace, secret["metadata"]["name"]) or {}
            check("Secret", live, agent.name, agent.metadata.uid)
        if agent.metadata.annotations.get(c.ACCEPT_NEW_KEYS_ANNOTATION) is not None:
            await self._consume_accept(agent)
        return KeySecret(
            ring_of(live), fresh=bool(sealed.evidence), set_aside=stamp, created=created
        )

    async def _stop_pods(self, agent: Agent, live_sts: Mapping[str, Any] | None) -> None:
        """Before state is set aside, no pod may still write to it: scale to zero and
        wait (the handler retries) until the last one is gone."""
        if live_sts is None or claim(live_sts, agent.name, agent.metadata.uid) != "controlled":
            return
        replicas = int(((live_sts.get("status") or {}).get("replicas")) or 0)
        if int((live_sts.get("spec") or {}).get("replicas") or 0) > 0:
            await self.kube.patch("StatefulSet", agent.namespace, agent.name, ZERO_REPLICAS)
        if replicas > 0 or int((live_sts.get("spec") or {}).get("replicas") or 0) > 0:
            raise FreshStartPendingError(
                f"fresh start accepted for Agent {agent.name}: stopping its {replicas} pod(s) "
                "(final checkpoint with the old key) before the old state is set aside"
            )

    async def _consume_accept(self, agent: Agent) -> None:
        """The consent is one-shot: a later loss of the Secret must stop again."""
        patch = {"metadata": {"annotations": {c.ACCEPT_NEW_KEYS_ANNOTATION: None}}}
        await self.kube.patch("Agent", agent.namespace, agent.name, patch)

    async def adopt_state(self, agent: Agent) -> StateObjects:
        """Unlabel the state a deleted Agent of the same name left behind (retained); the
        state objects listed, which also tell whether the Agent has sealed state."""
        state = await state_objects(self.kube, agent)
        listed = (("ConfigMap", state.config_maps), ("PersistentVolumeClaim", state.pvcs))
        for kind, objs in listed:
            for obj in objs:
                labels = (obj.get("metadata") or {}).get("labels") or {}
                if labels.get(c.RETAINED_LABEL) == "true" and self._is_state_of(agent, kind, obj):
                    name = obj["metadata"]["name"]
                    patch = {"metadata": {"labels": {c.RETAINED_LABEL: None}}}
                    await self.kube.patch(kind, agent.namespace, name, patch)
        return state

    @staticmethod
    def _is_state_of(agent: Agent, kind: str, obj: Mapping[str, Any]) -> bool:
        """State this Agent's pods wrote, by its label. ConfigMaps (the runtime's) also by
        name and without a controller; claims come from our StatefulSet's template."""
        meta = obj.get("metadata") or {}
        if kind == "ConfigMap":
            return is_state_config_map(agent.name, obj)
        return (meta.get("labels") or {}).get(c.AGENT_LABEL) == agent.name

    # ---- delete ---------------------------------------------------------------------------

    async def finalize(self, agent: Agent) -> None:
        """Honour state.retainOnDelete before the children are garbage-collected."""
        # By the Agent's label, which every state object of it carries: not every
        # ConfigMap of the namespace (thousands, with a fleet in it).
        listed = await state_objects(self.kube, agent)
        config_maps = [cm for cm in listed.config_maps if is_state_config_map(agent.name, cm)]
        state: list[tuple[str, dict[str, Any]]] = [
            *(("ConfigMap", cm) for cm in config_maps),
            *(("PersistentVolumeClaim", pvc) for pvc in listed.pvcs),
        ]
        selector = f"{c.AGENT_LABEL}={agent.name}"
        generated_keys = builders.key_secret_name_for(agent) == c.keys_secret_name(agent.name)
        if agent.spec.state.retain_on_delete:
            keep = {"metadata": {"labels": {c.RETAINED_LABEL: "true"}, "ownerReferences": None}}
            name = c.keys_secret_name(agent.name)
            secret = (
                await self.kube.get("Secret", agent.namespace, name) if generated_keys else None
            )
            # Only this Agent's own Secret: a same-named foreign one keeps its owner.
            if secret is not None and claim(secret, agent.name, agent.metadata.uid) == "controlled":
                await self._keep("Secret", agent.namespace, name, keep)
            for kind, obj in state:
                await self._keep(kind, agent.namespace, obj["metadata"]["name"], keep)
            logger.info("kept %d state objects and the keys of %s", len(state), agent.name)
            return
        for kind, obj in state:
            await self.kube.delete(kind, agent.namespace, obj["metadata"]["name"])
        # The state is gone, and so must be its high-water mark: a new Agent of this name
        # starts empty, which must not read as a rollback of the old one's state.
        heartbeat = re.compile(rf"{re.escape(agent.name)}-\d+-heartbeat")
        for lease in await self.kube.list("Lease", agent.namespace, selector):
            if heartbeat.fullmatch(name := lease["metadata"]["name"]):
                await self.kube.delete("Lease", agent.namespace, name)

    async def _keep(self, kind: str, namespace: str, name: str, keep: dict[str, Any]) -> None:
        """Mark one object retained. One gone since it was read is nothing to keep: its
        namespace is being deleted (which takes every object in it) or someone deleted
        it, and a 404 here would only hold the Agent's deletion in kopf's retries."""
        try:
            await self.kube.patch(kind, namespace, name, keep)
        except KubeError as exc:
            if exc.status != 404:
                raise
            logger.info("%s %s/%s went before it could be kept", kind, namespace, name)

    # ---- observe --------------------------------------------------------------------------

    async def heartbeats(self, agent: Agent, replicas: int) -> list[Heartbeat]:
        """Fresh heartbeats of the pods below `replicas`; stale or missing ones are skipped."""
        fresh, _ = await self.read_heartbeats(agent, replicas)
        return fresh

    async def read_heartbeats(
        self, agent: Agent, replicas: int, running: int | None = None
    ) -> tuple[list[Heartbeat], list[str]]:
        """The fresh heartbeats of the pods below `replicas`, and those of the pods below
        `running` (the StatefulSet's replicas) whose last one is older than
        `heartbeat_stale_seconds`: a replica cut off from the API server, or hung. A pod
        that never beat is in neither (still starting), nor is the old Lease of a pod that
        should not run (suspended, scaled down). From the Lease watch when there is one."""
        running = replicas if running is None else running
        pods = [c.pod_name(agent.name, ordinal) for ordinal in range(replicas)]
        if self.observed is not None:
            by_pod = {beat.pod: beat for beat in self.observed.beats(agent.namespace, agent.name)}
            found = [by_pod.get(pod) for pod in pods]
        else:
            found = []
            for pod in pods:
                lease = await self.kube.get("Lease", agent.namespace, c.heartbeat_lease_name(pod))
                found.append(parse_heartbeat(lease) if lease else None)
        beats: list[Heartbeat] = []
        stale: list[str] = []
        now = self.now()
        for ordinal, beat in enumerate(found):
            if beat is None:
                continue
            if (now - beat.time).total_seconds() > self.settings.heartbeat_stale_seconds:
                if ordinal < running:
                    stale.append(pods[ordinal])
                continue
            beats.append(beat)
        return beats, stale

    async def statefulset(self, agent: Agent) -> Mapping[str, Any] | None:
        """The Agent's StatefulSet as the watch last saw it, or read when none watches."""
        if self.observed is not None:
            return self.observed.statefulset(agent.namespace, agent.name)
        return await self.kube.get("StatefulSet", agent.namespace, agent.name)

    async def safety_net_finds_drift(self, agent: Agent, unseen: set[tuple[str, str]]) -> bool:
        """The slow check behind the watches: a child no watch event has shown (a
        deletion lost between two watch streams), or a drifted key Secret. Costs one GET
        by name: Secrets are never listed or watched."""
        if unseen:
            return True
        name = builders.key_secret_name_for(agent)
        secret = await self.kube.get("Secret", agent.namespace, name)
        return key_secret_drifted(agent, secret, await self.statefulset(agent))

    def alert_state(self, agent: Agent, previous: Mapping[str, Any] | None) -> AlertState:
        """A fresh alert state; an incident already in the status stays open (no re-POST)."""
        was_open = any(
            cond.get("type") == ALERTING and cond.get("status") == "True"
            for cond in (previous or {}).get("conditions") or []
        )
        return AlertState(ErrorWindow(agent.spec.alerting.window_seconds), Incident(was_open))

    async def observe(
        self,
        agent: Agent,
        previous: Mapping[str, Any] | None,
        alerts: AlertState,
        statefulset: Mapping[str, Any] | None = None,
        blocked: Blocked | None = None,
    ) -> StatusUpdate:
        """Read the StatefulSet and heartbeats, evaluate alerting, compute the status."""
        if statefulset is None:
            statefulset = await self.statefulset(agent)
        sts_replicas = int(((statefulset or {}).get("spec") or {}).get("replicas") or 0)
        alerting = agent.spec.alerting
        async with alerts.lock:  # read and evaluate in order (see AlertState)
            beats, stale = await self.read_heartbeats(
                agent, max(sts_replicas, agent.spec.replicas), running=sts_replicas
            )
            alerts.window.window_seconds = alerting.window_seconds
            alerts.window.observe(
                self.monotonic(),
                {
                    hb.pod: (hb.metrics.get("requests", 0), hb.metrics.get("errors", 0))
                    for hb in beats
                },
            )
            rate = alerts.window.rate(alerting.min_requests)
            transition = alerts.incident.evaluate(rate, alerting.error_rate_threshold)
        message = (
            f"error rate {rate:.1%} over {alerting.window_seconds}s "
            f"(threshold {alerting.error_rate_threshold:.1%})"
        )
        observation = Observation(
            statefulset=statefulset,
            heartbeats=beats,
            error_rate=rate,
            alerting=alerts.incident.open,
            alert_message=message,
            blocked=blocked,
            stale_heartbeats=stale,
        )
        update = compute_status(agent, observation, previous, self.now())
        if transition is not None:
            await self.notify(agent, transition, rate)
        return update

    async def notify(self, agent: Agent, transition: Any, rate: float) -> None:
        """Send the webhook in the background; a missing Secret is logged, never raised."""
        ref = agent.spec.alerting.webhook_secret_ref
        if ref is None:
            return
        try:
            secret = await self.kube.get("Secret", agent.namespace, ref.name)
        except KubeError as exc:
            logger.warning("alert webhook Secret of %s unreadable: %s", agent.name, exc)
            return
        encoded = ((secret or {}).get("data") or {}).get(ref.key)
        if not encoded:
            logger.warning("alert webhook Secret %s has no key %s", ref.name, ref.key)
            return
        url = base64.b64decode(encoded).decode().strip()
        body = payload(
            agent.name, agent.namespace, transition, rate, agent.spec.alerting.error_rate_threshold
        )
        self.notifier.send(url, body)
