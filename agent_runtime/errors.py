"""The runtime's exception hierarchy.

Domain code raises these; the HTTP edge (``middleware/errors.py``) maps each to a status
code and a JSON body, and the command line maps ``ConfigError`` to exit code 2. Nothing
below the edge knows about HTTP.
"""

from __future__ import annotations


class AgentryRuntimeError(Exception):
    """Base of every error the runtime raises on purpose."""


class ConfigError(AgentryRuntimeError):
    """A setting is missing or invalid; ``setting`` is the environment variable's name."""

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"{setting}: {reason}")
        self.setting = setting
        self.reason = reason


class RequestError(AgentryRuntimeError):
    """A request the runtime refuses; subclasses carry the HTTP status and a stable code."""

    status = 400
    code = "bad_request"
    closes_connection = False  # True when the rest of the request cannot be trusted

    def __init__(
        self,
        message: str,
        *,
        retry_after: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.headers = dict(headers or {})


class InvalidRequest(RequestError):
    """The body or path failed validation; ``field`` names what to fix."""

    status = 400
    code = "invalid"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


class Unauthorized(RequestError):
    status = 401
    code = "unauthorized"


class Forbidden(RequestError):
    """A valid caller asked for something its token does not allow."""

    status = 403
    code = "forbidden"


class AuthThrottled(RequestError):
    """Too many failed authentications from this address; its token is not looked at."""

    status = 429
    code = "auth_throttled"


class SessionNotFound(RequestError):
    status = 404
    code = "not_found"


class Throttled(RequestError):
    """Over the rate limit; the headers carry Retry-After and the RateLimit fields."""

    status = 429
    code = "rate_limited"


class TokenBudgetSpent(RequestError):
    """Over ``rateLimit.tokensPerMinute``; the headers carry Retry-After and RateLimit."""

    status = 429
    code = "token_budget_spent"

    def __init__(self, message: str, *, headers: dict[str, str], scope: str) -> None:
        super().__init__(message, headers=headers)
        self.scope = scope


class BodyTooLarge(RequestError):
    status = 413
    code = "body_too_large"


class BodyTimeout(RequestError):
    """The body did not arrive within ``BODY_READ_TIMEOUT_SECONDS``; its rest is unread."""

    status = 408
    code = "body_timeout"
    closes_connection = True


class ClientGone(RequestError):
    """The client closed the connection before its body arrived: its failure, not ours.

    Nobody reads the answer; the status keeps the request out of the server errors that
    the error-rate alert counts.
    """

    status = 499
    code = "client_closed_request"
    closes_connection = True


class TooManyInFlight(RequestError):
    """The client already has ``MAX_CONCURRENT_PER_CLIENT`` requests in flight."""

    status = 429
    code = "too_many_in_flight"


class Overloaded(RequestError):
    """More requests in flight than ``MAX_CONCURRENT``: shed load."""

    status = 503
    code = "overloaded"


class ModelUnavailable(RequestError):
    """The model failed and the fallback is ``reject``."""

    status = 503
    code = "model_unavailable"


class ModelStreamBroken(RequestError):
    """The model failed after part of a streamed reply had gone out: nothing is stored.

    The fallback cannot take over mid-reply (the caller already holds the model's first
    words), so a streaming surface ends the stream with this error instead.
    """

    status = 502
    code = "model_stream_broken"


class ModelRefusedRequest(RequestError):
    """The provider refused this conversation (400/413/422), e.g. longer than its context.

    The request's own failure: answered 422 and never counted against the circuit breaker,
    so one client's oversized history cannot degrade every other client's replies.
    """

    status = 422
    code = "model_refused_request"


class SessionTurnLimit(RequestError):
    """The session has ``MAX_TURNS`` turns: it takes no more."""

    status = 409
    code = "session_turn_limit"


class SessionTooLarge(RequestError):
    """The question would take the session past ``MAX_SESSION_BYTES``."""

    status = 413
    code = "session_too_large"


class SessionCapacityReached(RequestError):
    """The replica holds ``MAX_SESSIONS`` sessions or ``MAX_STATE_BYTES`` of them."""

    status = 507
    code = "session_capacity"


class StateUnavailable(RequestError):
    """The stored state could not be read (wrong or missing key): sessions are off."""

    status = 503
    code = "state_unavailable"


class ModelError(AgentryRuntimeError):
    """A model provider call failed; ``kind`` is a short label for metrics and logs."""

    def __init__(self, kind: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


class ModelRefusal(ModelError):
    """The provider answered this one request 400, 413 or 422: its input, not an outage."""

    def __init__(self, status: int) -> None:
        super().__init__("refused", f"provider refused the request ({status})")
        self.status = status
