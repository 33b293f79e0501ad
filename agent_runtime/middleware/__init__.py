"""aiohttp middlewares, one concern per module, applied in this order: request context (id,
access log, metrics) → errors → body limit → auth → rate limit → concurrency. To save a
layer per concern on every request, ``guard`` sequences everything after the request
context in one layer; ``app.create_app`` installs the two. Only ``/v1/`` paths are limited
and authenticated; probes and metrics are not.
The typed request keys below carry what one layer tells another about a request.
"""

from aiohttp import web

API_PREFIX = "/v1/"

CLIENT_ID: web.RequestKey[str] = web.RequestKey("client_id", str)
# Set with CLIENT_ID by auth: the token is marked [admin] in the tokens file.
ADMIN: web.RequestKey[bool] = web.RequestKey("admin", bool)
DEGRADED: web.RequestKey[bool] = web.RequestKey("degraded", bool)
ERROR_CODE: web.RequestKey[str] = web.RequestKey("error_code", str)
