"""Pure functions that turn a validated Agent into the children the operator converges.

Nothing here talks to Kubernetes: each `build_*` returns a plain manifest dict, so the
handlers, the kmock tests and the unit tests all see the same desired state.
"""

from agentry_operator.builders.common import owner_reference
from agentry_operator.builders.config import (
    build_config_map,
    build_key_secret,
    build_limits_config_map,
    build_profile_config_map,
    config_hash,
    replica_limits,
    runtime_environment,
)
from agentry_operator.builders.network import build_network_policy
from agentry_operator.builders.profiles import PROFILES, Profile, profile_for
from agentry_operator.builders.rbac import build_role, build_role_binding, build_service_account
from agentry_operator.builders.workload import (
    build_pdb,
    build_pods_service,
    build_service,
    build_statefulset,
    key_secret_name_for,
)

__all__ = [
    "PROFILES",
    "Profile",
    "build_config_map",
    "build_key_secret",
    "build_limits_config_map",
    "build_network_policy",
    "build_pdb",
    "build_pods_service",
    "build_profile_config_map",
    "build_role",
    "build_role_binding",
    "build_service",
    "build_service_account",
    "build_statefulset",
    "config_hash",
    "key_secret_name_for",
    "owner_reference",
    "profile_for",
    "replica_limits",
    "runtime_environment",
]
