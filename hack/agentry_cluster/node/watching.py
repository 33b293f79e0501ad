"""List-then-watch with reconnection, the way informers do it, for the node's two loops
(pods bound to it, pods waiting for a node). Every object is handed to a callback as
ADDED/MODIFIED/DELETED; after a relist, objects that vanished meanwhile come as DELETED.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from agentry_cluster.node.apiclient import ApiClient, ApiError

Json = dict[str, Any]
Handler = Callable[[str, Json], Awaitable[None]]


async def watch_forever(
    api: ApiClient, path: str, params: dict[str, str], handler: Handler, log: logging.Logger
) -> None:
    known: dict[str, Json] = {}
    while True:
        try:
            listing = await api.get(path, params)
            seen = {}
            for item in listing.get("items") or []:
                seen[item["metadata"]["uid"]] = item
                await handler("MODIFIED" if item["metadata"]["uid"] in known else "ADDED", item)
            for uid, gone in known.items():
                if uid not in seen:
                    await handler("DELETED", gone)
            known = seen
            version = listing["metadata"]["resourceVersion"]
            while True:
                async for event in api.watch(path, dict(params, resourceVersion=version)):
                    kind, obj = event["type"], event["object"]
                    if kind == "ERROR":
                        raise ApiError(int(obj.get("code", 410)), str(obj.get("message")), "watch")
                    version = obj["metadata"].get("resourceVersion", version)
                    if kind == "BOOKMARK":
                        continue
                    uid = obj["metadata"]["uid"]
                    if kind == "DELETED":
                        known.pop(uid, None)
                    else:
                        known[uid] = obj
                    await handler(kind, obj)
        except asyncio.CancelledError:
            raise
        except (ApiError, aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            log.warning("watch %s: %s; listing again", path, exc)
            await asyncio.sleep(1)
