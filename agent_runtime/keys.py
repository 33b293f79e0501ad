"""Loading the key ring according to the environment.

With ``KEYS_DIR`` the mounted Secret is read. Without it, only development proceeds: a
key is generated beside the state (``STATE_DIR/../keys``, or a temporary directory for
the memory backend) with a loud warning; staging and production never get here because
settings validation requires ``KEYS_DIR``.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from agent_runtime.config import Settings, env_name
from agent_runtime.crypto import CryptoError, KeyRing
from agent_runtime.errors import ConfigError

log = logging.getLogger("agent_runtime.keys")


def load_keyring(settings: Settings) -> KeyRing:
    """The key ring, self-tested; ``ConfigError`` naming ``AGENTRY_KEYS_DIR`` if unusable."""
    try:
        if settings.keys_dir is not None:
            keyring = KeyRing.from_directory(settings.keys_dir)
        else:
            if settings.environment != "development":
                raise ConfigError(env_name("keys_dir"), f"required in {settings.environment}")
            if settings.state_backend == "memory":
                directory = Path(tempfile.mkdtemp(prefix="agentry-dev-keys-"))
            else:
                directory = settings.state_dir.resolve().parent / "keys"
            keyring = KeyRing.generate_development(directory)
            log.warning(
                "DEVELOPMENT KEY IN USE: AGENTRY_KEYS_DIR is unset, so state is encrypted "
                "with a key stored unprotected beside it; never do this outside development",
                extra={"fields": {"keys_dir": str(directory)}},
            )
        keyring.self_test()
    except CryptoError as error:
        raise ConfigError(env_name("keys_dir"), str(error)) from None
    return keyring
