"""Rewrite one marked section of docs/benchmarks.md, keeping every other section intact."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nEach section is rewritten by its own benchmark (`make bench`).\n"


def machine() -> str:
    uname = subprocess.run(["uname", "-a"], capture_output=True, text=True, check=False)
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return (
        f"- machine: `{uname.stdout.strip()}`\n- CPU: {cpu}, {os.cpu_count()} cores\n"
        f"- Python {platform.python_version()}\n"
    )


def write_section(name: str, body: str) -> None:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = DOC.read_text() if DOC.exists() else HEADER
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)
