"""``python -m benchmarks``: run every benchmark module and update docs/benchmarks.md."""

from __future__ import annotations

import asyncio
import sys

from benchmarks import runtime


def main() -> int:
    asyncio.run(runtime.main(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
