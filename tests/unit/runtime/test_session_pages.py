"""Large sessions do not stall the event loop (issue 16: 9).

Checks: GET of a session of a few MB (the review's 18 MB session, bounded: 50 turns of
60 KB) answers one page of at most `limit` messages and about 1 MiB, whose `next` walks
the whole session in order; `after` and `limit` out of range are 400 naming the field;
/livez answers while eight clients page through that session at once; the checkpoint of
a large state is encoded and sealed in a worker thread on the pvc and configmap stores
(the configmap one in test_state_configmap.py), to the same bytes as before.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from agent_runtime.app import record_context
from agent_runtime.crypto import KeyRing
from agent_runtime.paging import MAX_LIMIT, PAGE_BYTES
from agent_runtime.state import MemoryState, PvcStore, codec
from tests.support.runtime import MakeClient, anon, make_settings
from tests.support.state import (
    CheckpointWork,
    check_the_loop_ran_between_slices,
    sessions_of,
    watching_checkpoint_work,
)

TURNS = 50
TURN_TEXT = "x" * 60_000


async def big_session(make_client: MakeClient) -> TestClient[Any, Any]:
    api = await make_client(overrides={"max_session_bytes": 16 * 1024 * 1024})
    for turn in range(TURNS):
        content = f"{turn} {TURN_TEXT}"
        response = await api.post("/v1/sessions/big/messages", json={"content": content})
        assert response.status == 200
    return api


async def read_all_pages(api: TestClient[Any, Any], limit: int | None = None) -> list[Any]:
    """Follow `next` from the start; every page stays within its bounds."""
    messages: list[Any] = []
    after: int | None = 0
    while after is not None:
        query = f"?after={after}" + (f"&limit={limit}" if limit else "")
        response = await api.get(f"/v1/sessions/big{query}")
        assert response.status == 200
        assert len(await response.read()) < PAGE_BYTES + 64 * 1024
        page = await response.json()
        assert len(page["messages"]) <= (limit or 100)
        assert page["total"] == 2 * TURNS
        messages.extend(page["messages"])
        after = page["next"]
    return messages


async def test_a_session_of_megabytes_is_read_in_pages_that_walk_it_in_order(
    make_client: MakeClient,
) -> None:
    api = await big_session(make_client)
    first = await (await api.get("/v1/sessions/big")).json()
    assert first["next"] == len(first["messages"]) < 2 * TURNS
    messages = await read_all_pages(api)
    assert len(messages) == 2 * TURNS
    questions = [m["content"] for m in messages if m["role"] == "user"]
    assert questions == [f"{turn} {TURN_TEXT}" for turn in range(TURNS)]
    assert await read_all_pages(api, limit=7) == messages


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("after=-1", "after"),
        ("after=abc", "after"),
        ("limit=0", "limit"),
        (f"limit={MAX_LIMIT + 1}", "limit"),
        ("limit=1e3", "limit"),
    ],
)
async def test_a_page_out_of_range_is_refused_naming_the_parameter(
    make_client: MakeClient, query: str, field: str
) -> None:
    api = await make_client()
    await api.post("/v1/sessions/s/messages", json={"content": "hi"})
    response = await api.get(f"/v1/sessions/s?{query}")
    assert response.status == 400
    assert (await response.json())["error"]["field"] == field


async def test_livez_answers_while_eight_clients_page_through_a_large_session(
    make_client: MakeClient,
) -> None:
    api = await big_session(make_client)

    async def probe_until(done: asyncio.Event) -> int:
        answered = 0
        while not done.is_set():
            assert (await api.get("/livez")).status == 200
            answered += 1
        return answered

    done = asyncio.Event()
    probing = asyncio.create_task(probe_until(done))
    readers = await asyncio.gather(*(read_all_pages(api) for _ in range(8)))
    done.set()
    assert all(len(messages) == 2 * TURNS for messages in readers)
    assert await probing >= 1


def test_messages_encoded_in_runs_are_the_bytes_of_the_whole_list() -> None:
    messages = [
        {"role": "user", "content": 'quotes " and \\ and é and 😀 and \n'},
        {"role": "assistant", "content": ""},
    ] * (codec.MESSAGES_PER_CALL + 3)
    expected = json.dumps(messages, separators=(",", ":"), ensure_ascii=False).encode()
    assert codec._encode_messages(messages) == expected
    assert codec._encode_messages([]) == b"[]"
    one = json.dumps(messages[:1], separators=(",", ":"), ensure_ascii=False).encode()
    assert codec._encode_messages(messages[:1]) == one


async def checkpointed_and_reopened(
    tmp_path: Path, keyring: KeyRing, monkeypatch: pytest.MonkeyPatch, state: MemoryState
) -> CheckpointWork:
    """Checkpoint `state` in a new pvc store, watching the work; a new store restores it."""
    settings = make_settings(tmp_path, state_backend="pvc")
    store = PvcStore(settings.state_dir, keyring, record_context(settings))
    await store.load()
    async with watching_checkpoint_work(monkeypatch) as work:
        await store.checkpoint(state)
    reopened = PvcStore(settings.state_dir, keyring, record_context(settings))
    assert (await reopened.load()).state == state
    return work


async def test_the_pvc_checkpoint_lets_the_loop_serve_between_slices_and_seals_off_it(
    tmp_path: Path, keyring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = sessions_of(40, 100_000)
    work = await checkpointed_and_reopened(tmp_path, keyring, monkeypatch, state)
    check_the_loop_ran_between_slices(work, 40, 100_000)


async def test_a_session_of_megabytes_is_encoded_in_slices_and_sealed_off_the_loop(
    tmp_path: Path, keyring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = {anon("big"): [{"role": "user", "content": "y" * 6_000}] * 600}  # 3.6 MB
    work = await checkpointed_and_reopened(tmp_path, keyring, monkeypatch, state)
    assert work.bodies_sealed_on_loop == [False]
    # The loop ran between the encoder's calls (each of them over SLICE_BYTES here).
    assert work.loop_turns_at_each_body[0] >= 600 // codec.MESSAGES_PER_CALL
