"""``python -m benchmarks``: run every benchmark module and update docs/benchmarks.md
(runtime, the runtime's instructions per request, protocol surfaces, postgres, then the
runtime's footprint).

The postgres backend's figures (``benchmarks/postgres.py``) are part of every run; they
are skipped with the reason when the PostgreSQL server binaries are missing. So is the
runtime's footprint (what the operator's resource defaults are sized from, about a
minute). ``--cluster`` adds the local cluster's figures (under a minute) and
``--operator`` the operator benchmark (about five minutes); both need root for the local
cluster they start: ``python -m benchmarks --cluster --operator``. The other arguments go
to the runtime benchmark.
"""

from __future__ import annotations

import asyncio
import sys

from benchmarks import cluster, footprint, instructions, operator, postgres, protocols, runtime

CLUSTER_FLAGS = ("--cluster", "--operator")


def main() -> int:
    args = sys.argv[1:]
    asyncio.run(runtime.main([arg for arg in args if arg not in CLUSTER_FLAGS]))
    status = instructions.main([])
    asyncio.run(protocols.main([]))
    status |= asyncio.run(postgres.main(["--seconds", "5"]))
    asyncio.run(footprint.main([]))
    if "--cluster" in args:
        status |= cluster.main()
    if "--operator" in args:
        status |= operator.main([])
    return status


if __name__ == "__main__":
    sys.exit(main())
