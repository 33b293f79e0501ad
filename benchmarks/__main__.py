"""``python -m benchmarks``: run every benchmark module and update docs/benchmarks.md.

``--operator`` adds the operator benchmark (about five minutes; needs root for the local
cluster it starts): ``python -m benchmarks --operator``. The other arguments go to the
runtime benchmark.
"""

from __future__ import annotations

import asyncio
import sys

from benchmarks import operator, runtime


def main() -> int:
    args = sys.argv[1:]
    with_operator = "--operator" in args
    asyncio.run(runtime.main([arg for arg in args if arg != "--operator"]))
    if with_operator:
        return operator.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main())
