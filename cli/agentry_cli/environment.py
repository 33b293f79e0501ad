"""What every command runs with: the cluster, the namespace, the output, the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from .cluster import Cluster
from .formatting import render
from .timing import Clock, SystemClock


@dataclass
class Env:
    """The resolved global options and the injected collaborators of one invocation."""

    cluster: Cluster
    namespace: str
    output: str  # table | json | yaml
    out: TextIO
    err: TextIO
    clock: Clock = field(default_factory=SystemClock)

    def emit(self, text: str) -> None:
        """Print a line (or block) on stdout and flush, for pipes and --watch."""
        print(text, file=self.out, flush=True)

    def note(self, text: str) -> None:
        """Print progress or a warning on stderr, keeping stdout parseable."""
        print(text, file=self.err, flush=True)

    def emit_document(self, document: Any) -> None:
        """Print a document in the chosen -o json|yaml format."""
        self.emit(render(document, self.output))

    def show(self, document: Any, as_table: Callable[[Any], str]) -> None:
        """Print `document` as -o asks: rendered by `as_table`, or as JSON/YAML."""
        if self.structured:
            self.emit_document(document)
        else:
            self.emit(as_table(document))

    @property
    def structured(self) -> bool:
        return self.output in ("json", "yaml")
