"""The operator's log never carries what it reads from the API server: at logLevel debug,
kubernetes_asyncio's REST logger would print every response body, Secrets' data included
(found by tests/e2e/test_secrets_in_logs.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from agentry_operator.cli import BODY_LOGGERS, configure_logging


@pytest.fixture(autouse=True)
def _restore_levels() -> Iterator[None]:
    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in BODY_LOGGERS)]
    levels = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def test_at_debug_the_rest_client_does_not_log_response_bodies() -> None:
    configure_logging("debug")
    assert logging.getLogger("agentry_operator.reconcile").isEnabledFor(logging.DEBUG)
    rest = logging.getLogger("kubernetes_asyncio.client.rest")
    assert not rest.isEnabledFor(logging.DEBUG)
    assert rest.isEnabledFor(logging.INFO)


def test_a_quieter_level_stays_quieter_for_the_rest_client_too() -> None:
    configure_logging("error")
    assert not logging.getLogger("kubernetes_asyncio.client.rest").isEnabledFor(logging.WARNING)
