"""Keep libraries the operator never uses out of its memory.

kopf, when it is imported, tries to import the models of every Kubernetes client it
knows (`kubernetes` and `kubernetes_asyncio`), only to recognise their objects when a
handler passes one to `kopf.adopt()` and friends. The operator passes plain dicts, yet
the synchronous `kubernetes` client (installed for the kubectl plugin) costs about 26 MB
of RSS and 650 modules that way, and `kubernetes_asyncio` (no longer a dependency, but
present in an environment that installed it) another 40 MB and 1,200 modules: together
two thirds of an idle operator. kopf treats a missing
client as "not installed" (ImportError), which is what this arranges for the duration
of kopf's import.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def hidden(*packages: str) -> Iterator[None]:
    """Within the block, `import <package>` raises ImportError (a `None` entry in
    sys.modules means exactly that); afterwards the packages import normally again.
    One already imported stays as it is."""
    blocked = [name for name in packages if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name) is None:
                del sys.modules[name]
