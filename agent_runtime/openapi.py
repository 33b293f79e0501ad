"""The OpenAPI 3.1 description of the runtime's HTTP API, served at ``/openapi.json``.

Written by hand (the API is small); a test checks that every route in ``routes.py`` is
described here and that the documented responses match what the handlers return.
"""

from __future__ import annotations

from typing import Any

from agent_runtime import __version__
from agent_runtime.paging import DEFAULT_AFTER, DEFAULT_LIMIT, MAX_LIMIT


def _error(description: str, *headers: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        response["headers"] = {name: {"schema": {"type": "string"}} for name in headers}
    return response


_SESSION_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"},
}
_OWNER = {
    "name": "client",
    "in": "query",
    "required": False,
    "description": "Admin tokens only: the client whose session to read or delete",
    "schema": {"type": "string"},
}
_PAGE = [
    {
        "name": "after",
        "in": "query",
        "required": False,
        "description": "Messages already read: the page starts after this many (default 0)",
        "schema": {"type": "integer", "minimum": 0, "default": DEFAULT_AFTER},
    },
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "At most this many messages; a page also stops near 1 MiB of text",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    },
]
_NOT_FOUND = _error("No session of this id belongs to the caller (or the named client)")
_NOT_ADMIN = _error("`client` given with a token that is not marked [admin]")
_LIMITED = {
    "401": _error("Missing or wrong bearer token (when authentication is on)"),
    "408": _error("The request body did not arrive within BODY_READ_TIMEOUT_SECONDS"),
    "429": _error(
        "Over the rate limit or the token budget (rateLimit.tokensPerMinute)",
        "Retry-After",
        "RateLimit",
        "RateLimit-Policy",
    ),
    "503": _error(
        "Overloaded, model unavailable (fallback reject), state unreadable or out of reach",
        "Retry-After",
    ),
}


_STREAM = {
    "name": "stream",
    "in": "query",
    "required": False,
    "description": "true: the reply as server-sent events (`delta`, then `done` or `error`)",
    "schema": {"type": "string", "enum": ["true", "false", "1", "0", "yes", "no"]},
}
_SSE = {
    "text/event-stream": {
        "schema": {
            "type": "object",
            "description": "one server-sent event",
            "properties": {"event": {"type": "string"}, "data": {"type": "string"}},
        }
    }
}
_DEGRADED = {
    "X-Agentry-Degraded": {
        "description": "true when the fallback answered",
        "schema": {"type": "string"},
    }
}
_TURN_ERRORS = {
    "409": _error("The session has MAX_TURNS turns (session_turn_limit)"),
    "413": _error(
        "Body over the limit, or the question would take the session "
        "past MAX_SESSION_BYTES (session_too_large)"
    ),
    "422": _error("The model refused this conversation (model_refused_request)"),
    "507": _error(
        "The replica holds MAX_SESSIONS sessions or MAX_STATE_BYTES "
        "(session_capacity), or the state store is full"
    ),
}


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def openai_paths() -> dict[str, Any]:
    """``/v1/models`` and ``/v1/chat/completions`` (``openai_api.py``)."""
    return {
        "/v1/models": {
            "get": {
                "summary": "OpenAI-compatible: the one model, this agent",
                "responses": {
                    "200": {
                        "description": "A list with the agent's name",
                        "content": _json("Models"),
                    },
                    **_LIMITED,
                },
            }
        },
        "/v1/chat/completions": {
            "post": {
                "summary": "OpenAI-compatible chat completion; X-Session-ID makes it a turn "
                "of that session, otherwise stateless",
                "parameters": [
                    {
                        "name": "X-Session-ID",
                        "in": "header",
                        "required": False,
                        "schema": {
                            "type": "string",
                            "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
                        },
                    }
                ],
                "requestBody": {"required": True, "content": _json("ChatRequest")},
                "responses": {
                    "200": {
                        "description": "A chat.completion, or with stream: chat.completion.chunk "
                        "events then [DONE]",
                        "headers": _DEGRADED,
                        "content": {**_json("ChatCompletion"), **_SSE},
                    },
                    "400": _error("Invalid body or header; `param` names what to fix"),
                    **_TURN_ERRORS,
                    **_LIMITED,
                },
            }
        },
    }


def a2a_paths() -> dict[str, Any]:
    """The A2A card and JSON-RPC endpoint (``a2a_api.py``)."""
    card = {
        "get": {
            "summary": "A2A 1.0 agent card (public)",
            "responses": {"200": {"description": "The agent card", "content": _json("Object")}},
        }
    }
    return {
        "/.well-known/agent-card.json": card,
        "/.well-known/agent.json": card,
        "/v1/a2a": {
            "post": {
                "summary": "A2A 1.0 JSON-RPC: SendMessage, SendStreamingMessage, GetTask, "
                "CancelTask (header A2A-Version: 1.0)",
                "parameters": [
                    {
                        "name": "A2A-Version",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    }
                ],
                "requestBody": {"required": True, "content": _json("JsonRpcRequest")},
                "responses": {
                    "200": {
                        "description": "A JSON-RPC response (result or error); "
                        "SendStreamingMessage: SSE of JSON-RPC responses",
                        "headers": _DEGRADED,
                        "content": {**_json("Object"), **_SSE},
                    },
                    "400": {
                        "description": "Not JSON, or not a JSON-RPC 2.0 request object",
                        "content": _json("Object"),
                    },
                    "413": _error("Body over the limit"),
                    **_LIMITED,
                },
            }
        },
    }


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Agentry agent runtime", "version": __version__},
        "paths": {
            "/v1/sessions/{id}/messages": {
                "post": {
                    "summary": "Send a message to a session of the caller (created on first use)",
                    "parameters": [_SESSION_ID, _STREAM],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/MessageRequest"}
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "The reply; durable before it is sent (streamed: "
                            "`done` is sent once the turn is durable)",
                            "headers": _DEGRADED,
                            "content": {**_json("Reply"), **_SSE},
                        },
                        "400": _error("Invalid body; `field` names what to fix"),
                        **_TURN_ERRORS,
                        **_LIMITED,
                    },
                }
            },
            "/v1/sessions/{id}": {
                "get": {
                    "summary": "A page of a session's messages (`next` reads on)",
                    "parameters": [_SESSION_ID, _OWNER, *_PAGE],
                    "responses": {
                        "200": {
                            "description": "One page of the session",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Session"}
                                }
                            },
                        },
                        "400": _error("`after` or `limit` out of range; `field` names it"),
                        "403": _NOT_ADMIN,
                        "404": _NOT_FOUND,
                        **_LIMITED,
                    },
                },
                "delete": {
                    "summary": "Erase a session (from storage by the next checkpoint)",
                    "parameters": [_SESSION_ID, _OWNER],
                    "responses": {
                        "204": {"description": "Deleted"},
                        "400": _error("Invalid session id or `client`; `field` names it"),
                        "403": _NOT_ADMIN,
                        "404": _NOT_FOUND,
                        **_LIMITED,
                    },
                },
            },
            "/v1/tools": {
                "get": {
                    "summary": "This replica's tool servers, their state, tools and call counts",
                    "responses": {
                        "200": {
                            "description": "The tool servers (empty without spec.tools)",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **_LIMITED,
                    },
                }
            },
            **openai_paths(),
            **a2a_paths(),
            "/livez": {
                "get": {
                    "summary": "Liveness: the process itself",
                    "responses": {"200": {"description": "ok"}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: state, model, disk, encryption "
                    "(`?verbose` for one line per check, JSON with Accept: application/json)",
                    "parameters": [
                        {
                            "name": "verbose",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {"description": "ready"},
                        "500": {"description": "not ready"},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "text exposition"}},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1"}},
                }
            },
        },
        "components": {
            "schemas": {
                "MessageRequest": {
                    "type": "object",
                    "required": ["content"],
                    "properties": {"content": {"type": "string", "minLength": 1}},
                },
                "Reply": {
                    "type": "object",
                    "required": ["reply", "degraded", "turn"],
                    "properties": {
                        "reply": {"type": "string"},
                        "degraded": {
                            "type": "boolean",
                            "description": "true when the fallback answered",
                        },
                        "turn": {
                            "type": "integer",
                            "minimum": 1,
                            "description": "number of user messages in the session",
                        },
                        "toolCalls": {
                            "type": "array",
                            "description": "the tool calls of this turn, when it made any",
                            "items": {"$ref": "#/components/schemas/ToolCall"},
                        },
                    },
                },
                "ToolCall": {
                    "type": "object",
                    "required": ["id", "name", "arguments", "outcome", "content"],
                    "properties": {
                        "id": {"type": "string"},
                        "name": {"type": "string"},
                        "server": {"type": "string"},
                        "arguments": {"type": "string", "description": "JSON text"},
                        "outcome": {
                            "type": "string",
                            "description": "ok, tool_error, timeout, unavailable, "
                            "circuit_open or invalid",
                        },
                        "content": {"type": "string", "description": "the result"},
                    },
                },
                "Session": {
                    "type": "object",
                    "required": ["id", "messages", "total", "next"],
                    "properties": {
                        "id": {"type": "string"},
                        "total": {
                            "type": "integer",
                            "description": "messages in the whole session",
                        },
                        "next": {
                            "type": ["integer", "null"],
                            "description": "`after` of the next page; null on the last page",
                        },
                        "messages": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["role", "content"],
                                "properties": {
                                    "role": {"enum": ["user", "assistant"]},
                                    "content": {"type": "string"},
                                },
                            },
                        },
                    },
                },
                "Object": {"type": "object"},
                "JsonRpcRequest": {
                    "type": "object",
                    "required": ["jsonrpc", "method"],
                    "properties": {
                        "jsonrpc": {"const": "2.0"},
                        "id": {"type": ["string", "integer", "null"]},
                        "method": {"type": "string"},
                        "params": {"type": "object"},
                    },
                },
                "Models": {
                    "type": "object",
                    "required": ["object", "data"],
                    "properties": {
                        "object": {"const": "list"},
                        "data": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "ChatRequest": {
                    "type": "object",
                    "required": ["messages"],
                    "properties": {
                        "model": {"type": "string"},
                        "stream": {"type": "boolean"},
                        "messages": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "required": ["role", "content"],
                                "properties": {
                                    "role": {"enum": ["system", "developer", "user", "assistant"]},
                                    "content": {"type": ["string", "array"]},
                                },
                            },
                        },
                    },
                },
                "ChatCompletion": {
                    "type": "object",
                    "required": ["id", "object", "created", "model", "choices", "usage"],
                    "properties": {
                        "object": {"const": "chat.completion"},
                        "choices": {"type": "array", "items": {"type": "object"}},
                        "usage": {"type": "object"},
                        "degraded": {
                            "type": "boolean",
                            "description": "true when the fallback answered",
                        },
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message", "type"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "type": {
                                    "type": "string",
                                    "description": "the OpenAI error type for the status",
                                },
                                "field": {"type": "string"},
                                "param": {"type": "string", "description": "the same as field"},
                            },
                        }
                    },
                },
            }
        },
    }
