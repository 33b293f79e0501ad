"""The plugin's exceptions and the exit codes scripts can rely on.

Every failure a user can cause or meet (a typo in a name, no cluster, missing
permission, a wait that timed out) is a `CliError`; `main` prints its message on one
line and exits with its code, without a traceback. Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # the operation ran and its outcome is bad: failing health, HTTP error, timeout
EXIT_USAGE = 2  # bad command line (argparse uses 2 as well)
EXIT_NOT_FOUND = 3  # the Agent or one of its objects does not exist
EXIT_FORBIDDEN = 4  # the API server refused: unauthorized or forbidden
EXIT_UNREACHABLE = 5  # no configuration, or the API server cannot be reached


class CliError(Exception):
    """A failure explained to the user in one line."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OperationFailed(CliError):
    """The request was understood but did not succeed (HTTP error, timeout, conflict)."""


class UsageError(CliError):
    """The command line does not make sense."""

    exit_code = EXIT_USAGE


class NotFound(CliError):
    """The Agent, or an object it should have, does not exist."""

    exit_code = EXIT_NOT_FOUND


class Forbidden(CliError):
    """The API server refused the credentials or the verb."""

    exit_code = EXIT_FORBIDDEN


class Unreachable(CliError):
    """No usable kubeconfig, or no API server answering at its address."""

    exit_code = EXIT_UNREACHABLE
