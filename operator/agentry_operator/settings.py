"""The operator's own configuration, read once at startup from AGENTRY_OPERATOR_* variables.

Passed down explicitly to handlers and builders; nothing reads the environment later.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class OperatorSettings(BaseSettings):
    """Settings of the agentry-operator process."""

    model_config = SettingsConfigDict(env_prefix="AGENTRY_OPERATOR_", extra="ignore")

    runtime_image: str = Field(
        default="ghcr.io/agentry/agentry:0.1.0",
        description="Image for agent pods when spec.image is empty.",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    watch_namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Namespaces to watch; empty means the whole cluster.",
    )
    liveness_port: int = Field(default=8081, ge=1, le=65535)
    readiness_port: int = Field(
        default=8082,
        ge=0,
        le=65535,
        description="/readyz: watching and caught up with every Agent; 0 turns it off.",
    )
    metrics_port: int = Field(default=9090, ge=0, le=65535, description="0 turns /metrics off.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    status_interval_seconds: float = Field(
        default=15.0, gt=0, description="How often heartbeats are turned into status."
    )
    drift_interval_seconds: float = Field(
        default=1800.0,
        gt=0,
        description="The safety net behind the watches: how often (spread ±10 % per "
        "Agent) each Agent's key Secret is read by name and the children the watches have "
        "seen are counted; a missing or changed one starts a converge. Drift in watched "
        "children is put back as soon as its watch event arrives.",
    )
    api_qps: float = Field(
        default=300.0,
        ge=0,
        description="Requests per second the operator's client may send after a burst "
        "(0: unbounded). kopf's watch streams and its patches of the Agents themselves "
        "are not counted.",
    )
    api_burst: int = Field(
        default=600, ge=1, description="Requests the client may send at once before api_qps."
    )
    max_converging: int = Field(
        default=16,
        ge=1,
        description="Agents converged at once (create, update and drift alike); more wait "
        "their turn, so a burst of new Agents finishes in order with bounded memory.",
    )
    webhook_retries: int = Field(default=5, ge=0)
    webhook_backoff_seconds: float = Field(default=1.0, ge=0)
    kubeconfig: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AGENTRY_OPERATOR_KUBECONFIG", "KUBECONFIG"),
        description="Kubeconfig outside a cluster; in a pod the service account is used.",
    )
    heartbeat_stale_seconds: float = Field(
        default=60.0, gt=0, description="A heartbeat older than this counts as missing."
    )
    agent_env: dict[str, str] = Field(
        default_factory=dict,
        description="Extra variables for every agent container, JSON {name: value}. The "
        "place for runtime tuning (AGENTRY_*), which spec.env refuses: whoever installs "
        "the operator may set it, an Agent's editor may not.",
    )

    api_server_cidrs: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses of the API server as pods reach it after the kubernetes "
        "Service's translation (its EndpointSlice), comma-separated CIDRs. The agents' "
        "NetworkPolicy allows egress to them on api_server_ports, and ingress from them to "
        "the agent port (the API server's proxy, kubectl agent invoke). Empty: egress on "
        "those ports to any address, and no ingress from outside the cluster's pods.",
    )
    api_server_ports: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [443, 6443],
        description="Ports of the API server (the Service's and its endpoints'), comma-separated.",
    )

    @field_validator("api_server_cidrs", "api_server_ports", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        """Accept "a,b" from the environment as well as a list."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("api_server_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        """Each entry an IPv4 or IPv6 network, written as the API server will store it."""
        return [str(ipaddress.ip_network(cidr, strict=False)) for cidr in value]

    @field_validator("watch_namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: object) -> object:
        """Accept "a,b" from the environment as well as a list."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
