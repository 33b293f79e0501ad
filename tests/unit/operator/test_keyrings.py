"""The key decisions of `agentry_operator.keyrings`, without a cluster.

Checks: a Secret's ring is read from `data` (base64) and `stringData`; the ids the state
needs are the checkpoints' keys within the ring the pods were given plus their active
key; a roll is held when a needed id is gone or the ring is unusable, and allowed when
only the active key changes; the KeysMissing message names the Secret, the ids and the
two ways out; commit points name their key ids.
"""

from __future__ import annotations

import base64
import json

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


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_a_ring_is_read_from_data_and_string_data() -> None:
    secret = {"data": {"active-key-id": b64("k-2"), "key.k-1": b64("x")}}
    secret["stringData"] = {"key.k-2": "y"}
    assert ring_of(secret) == Ring("k-2", ("k-1", "k-2"))


def test_the_state_needs_its_checkpoint_keys_and_the_pods_active_key() -> None:
    given = Ring("k-2", ("k-1", "k-2"))
    assert needed_key_ids({"k-1"}, given) == {"k-1", "k-2"}
    # a checkpoint id the pods were never given is state set aside by a fresh start
    assert needed_key_ids({"k1"}, Ring("k-9", ("k-9",))) == {"k-9"}
    assert needed_key_ids({"k1"}, None) == {"k1"}


def test_a_roll_is_held_only_when_a_needed_id_is_gone_or_the_ring_is_unusable() -> None:
    needed = {"k-1"}
    assert hold_reason("bot-keys", Ring("k-2", ("k-1", "k-2")), needed) is None
    held = hold_reason("bot-keys", Ring("k-2", ("k-2",)), needed)
    assert held is not None
    assert "bot-keys no longer holds key id(s) k-1" in held
    broken = hold_reason("bot-keys", Ring("k-3", ("k-1",)), needed)
    assert broken is not None
    assert "active-key-id names 'k-3', which has no key.k-3" in broken


def test_the_pod_template_records_the_ring_it_was_given() -> None:
    ring = Ring("k-2", ("k-1", "k-2"))
    sts = {"spec": {"template": {"metadata": {"annotations": ring_annotations(ring)}}}}
    assert given_ring(sts) == ring
    assert given_ring({"spec": {}}) is None


def test_commit_points_and_the_status_name_the_checkpoint_keys() -> None:
    commit = {"current": {"key_id": "k-1"}, "previous": {"key_id": "k-0"}}
    config_map = {"data": {"commit": json.dumps(commit)}}
    status = {"lastCheckpoint": {"keyId": "k-2"}}
    assert checkpoint_key_ids(status, [config_map, {"data": {"commit": "{bad"}}]) == {
        "k-0",
        "k-1",
        "k-2",
    }


def test_the_keys_missing_message_says_what_to_do() -> None:
    message = missing_message("bot", "bot-keys", {"k-1"}, ["1 state ConfigMap(s)"])
    assert "bot-keys is missing" in message
    assert "k-1" in message
    assert "kubectl agent keys import bot" in message
    assert "agentry.dev/accept-new-keys=true" in message


# ---- postgres: the ring keeps every key that may still seal a row (issue 8) -----------------


def test_rows_under_old_keys_keep_every_key_the_pods_were_given() -> None:
    given = Ring("k-new", ("k-new", "k-old"))
    assert row_key_ids(given, [0, 12, 0]) == {"k-new", "k-old"}
    assert row_key_ids(given, [0, None]) == {"k-new", "k-old"}, "a replica not reporting"
    assert row_key_ids(given, []) == {"k-new", "k-old"}, "no replica reporting at all"


def test_once_no_row_is_under_an_old_key_only_the_active_one_is_needed() -> None:
    assert row_key_ids(Ring("k-new", ("k-new", "k-old")), [0, 0, 0]) == {"k-new"}
    assert row_key_ids(None, [3]) == set(), "pods not started yet: nothing sealed"


def test_removing_a_key_that_rows_still_need_holds_the_roll() -> None:
    given = Ring("k-new", ("k-new", "k-old"))
    shrunk = Ring("k-new", ("k-new",))
    needed = row_key_ids(given, [5])
    reason = hold_reason("bot-keys", shrunk, needed)
    assert reason is not None
    assert "k-old" in reason
    assert hold_reason("bot-keys", shrunk, row_key_ids(given, [0, 0])) is None
