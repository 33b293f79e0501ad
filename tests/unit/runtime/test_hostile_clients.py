"""One hostile client must not fail other clients' requests (issue 16, items 1 and 2).

Checks, with the review's load shapes bounded to a few seconds: the poison rounds (posts
of a lone surrogate next to innocent turns on the pvc store) leave every innocent turn
acknowledged and stored.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent_runtime.app import record_context
from agent_runtime.crypto import KeyRing
from agent_runtime.state import PvcStore
from tests.support.runtime import MakeClient, make_settings

POISON = b'{"content": "\\ud800"}'


async def test_poison_posts_next_to_innocent_turns_fail_only_themselves(
    make_client: MakeClient, tmp_path: Path, keyring: KeyRing
) -> None:
    settings = make_settings(tmp_path, state_backend="pvc")
    store = PvcStore(settings.state_dir, keyring, record_context(settings))
    client = await make_client(settings=settings, store=store)
    rounds, innocent, poison = 30, 5, 2

    async def post(session: str, raw: bytes) -> int:
        headers = {"Content-Type": "application/json"}
        response = await client.post(f"/v1/sessions/{session}/messages", data=raw, headers=headers)
        return response.status

    for r in range(rounds):
        statuses = await asyncio.gather(
            *(post(f"innocent-{i}", b'{"content": "turn %d"}' % r) for i in range(innocent)),
            *(post(f"poison-{i}", POISON) for i in range(poison)),
        )
        assert statuses == [200] * innocent + [400] * poison, f"round {r}"
    for i in range(innocent):
        stored = await (await client.get(f"/v1/sessions/innocent-{i}")).json()
        assert len(stored["messages"]) == 2 * rounds
