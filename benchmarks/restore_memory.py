"""Peak memory of restoring a large pvc state (issue 16, item 6).

Writes three checkpoint generations of about 23 MB each (380 sessions of one 60 KB
message, the review's shape), then restores them in a fresh process and prints that
process's peak RSS. Before the fix every generation was read into memory at restore;
now only the newest that opens is.

``--source DIR`` runs the ``agent_runtime`` found in DIR (both the writing and the
restoring process), to compare with the code before the fix::

    mkdir -p /tmp/before && git archive a2ce581 agent_runtime | tar -x -C /tmp/before
    .venv/bin/python -m benchmarks.restore_memory --source /tmp/before
    .venv/bin/python -m benchmarks.restore_memory

Prints one JSON object; a few seconds. Not part of ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Run in a child process so that its peak RSS is the restore's alone. It uses only the
# names that exist before and after sessions had owners (issue 15).
CHILD = """
import asyncio, resource, sys
from pathlib import Path
import agent_runtime.state as state
from agent_runtime.crypto import KeyRing, RecordContext

ring = KeyRing({"k": bytes(32)}, "k")
store = state.PvcStore(Path(sys.argv[2]), ring, RecordContext("ns", "a", "a-0", ""), 3)

def key(i):
    owner = getattr(state, "SessionKey", None)
    return owner("anonymous", f"s{i}") if owner else f"s{i}"

async def main():
    restored = await store.load()
    if sys.argv[1] == "write":
        sessions = {key(i): [{"role": "user", "content": "x" * 60_000}] for i in range(380)}
        for _ in range(3):
            await store.checkpoint(sessions)
    await store.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(len(restored.state), peak)

asyncio.run(main())
"""


def run_child(mode: str, directory: Path, source: Path | None) -> tuple[int, int]:
    """(sessions restored, peak RSS in MiB) of one child process."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    output = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(directory)],
        env=env,
        cwd=directory,  # not this checkout: `-c` puts the working directory first on sys.path
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return int(output[0]), int(output[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="a directory holding agent_runtime")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        run_child("write", directory, args.source)
        stored = sum(p.stat().st_size for p in directory.glob("checkpoint-*"))
        sessions, peak = run_child("load", directory, args.source)
    print(
        json.dumps(
            {
                "checkpoint_bytes_on_disk": stored,
                "sessions_restored": sessions,
                "restore_peak_rss_mib": peak,
            }
        )
    )


if __name__ == "__main__":
    main()
