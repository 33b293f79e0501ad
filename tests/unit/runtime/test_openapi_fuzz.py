"""``/openapi.json`` against the live runtime, with a schema-based fuzzer (issue 9).

Schemathesis generates requests from the document for every route (valid and invalid
bodies, parameters and headers, streaming on and off) and checks each answer: no 5xx, a
documented status code, a documented content type and headers, a body (and each SSE
event) matching its schema. Run on a runtime process started here, with auth on so the
401s are exercised too, and with a fixed seed so a failure replays.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.unit.runtime.test_process import environment, free_port, runtime

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    )
)


async def test_the_fuzzer_finds_no_undocumented_answer(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("fuzz:tok-fuzz-123\n")
    port = free_port()
    env = environment(
        tmp_path,
        port,
        AGENTRY_STATE_BACKEND="memory",
        AGENTRY_AUTH_TOKENS_FILE=str(tokens),
        AGENTRY_AUTH_FAILURES_PER_MINUTE="0",
        AGENTRY_LOG_LEVEL="warning",
    )
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st is not None, "schemathesis is a test dependency"
    async with runtime(env):
        result = subprocess.run(  # noqa: ASYNC221 - the runtime is another process
            [
                st,
                "run",
                f"http://127.0.0.1:{port}/openapi.json",
                "--checks",
                CHECKS,
                "--max-examples",
                "25",
                "--seed",
                "9",
                "--header",
                "Authorization: Bearer tok-fuzz-123",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=540,
            cwd=tmp_path,  # its example cache stays out of the work tree
            check=False,
        )
    report = result.stdout[-6000:]
    assert result.returncode == 0, report
