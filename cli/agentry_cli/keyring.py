"""The Agent's key Secret: reading its key ids and building the patch that adds a key.

Layout (docs/architecture.md): `active-key-id` holds the id of the key that encrypts
new checkpoints, and each `key.<id>` holds base64 of 32 random bytes, as the mounted
file reads. In the Secret's `data` each value is base64 once more (the API's encoding).
Old keys are never removed: checkpoints written with them must stay readable. New ids
are random (`k-<8 hex>`), like the operator's first key, so an error that names a key id
names exactly one key, never "k1" of some other generation (issue 17).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable
from typing import Any

ACTIVE_KEY = "active-key-id"
KEY_PREFIX = "key."
KEY_BYTES = 32
ID_BYTES = 4


def key_ids(secret: dict[str, Any]) -> list[str]:
    """The ids of every key in the Secret, in the Secret's order."""
    return [k[len(KEY_PREFIX) :] for k in (secret.get("data") or {}) if k.startswith(KEY_PREFIX)]


def is_key(value: str) -> bool:
    """Whether a `data` value is what the runtime needs: base64 (API) of base64 of 32 bytes."""
    try:
        return len(base64.b64decode(base64.b64decode(value, validate=True), validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def active_key_id(secret: dict[str, Any]) -> str | None:
    value = (secret.get("data") or {}).get(ACTIVE_KEY)
    if not value:
        return None
    return base64.b64decode(value).decode("utf-8").strip()


def next_key_id(
    existing: list[str], token_bytes: Callable[[int], bytes] = secrets.token_bytes
) -> str:
    """A random `k-<8 hex>` that is not already in the Secret."""
    while True:
        candidate = f"k-{token_bytes(ID_BYTES).hex()}"
        if candidate not in existing:
            return candidate


def rotation_patch(
    secret: dict[str, Any], token_bytes: Callable[[int], bytes] = secrets.token_bytes
) -> tuple[str, dict[str, Any]]:
    """The new key id and a merge patch that adds its key and makes it active.

    The patch carries the Secret's resourceVersion, so a concurrent rotation makes
    one of the two fail with a conflict instead of both picking the same id.
    """
    new_id = next_key_id(key_ids(secret), token_bytes)
    key_file = base64.b64encode(token_bytes(KEY_BYTES))  # the mounted file's content
    patch = {
        "metadata": {"resourceVersion": secret.get("metadata", {}).get("resourceVersion")},
        "data": {
            f"{KEY_PREFIX}{new_id}": base64.b64encode(key_file).decode("ascii"),
            ACTIVE_KEY: base64.b64encode(new_id.encode("utf-8")).decode("ascii"),
        },
    }
    return new_id, patch
