"""The e2e suite's log scan (tests/support/secret_scan.py) finds a secret in each spelling
a leak could take, a token inside a tokens file, and key data in an Event or env var; and
it does not cry wolf over short values."""

from __future__ import annotations

import base64
from pathlib import Path

from tests.support.secret_scan import Harvest, forms, scan

KEY = bytes(range(32))
KEY_TEXT = base64.b64encode(KEY)  # as the key Secret stores it


def test_a_key_is_found_raw_in_base64_urlsafe_base64_and_hex(tmp_path: Path) -> None:
    spellings = [KEY_TEXT, base64.urlsafe_b64encode(KEY).rstrip(b"="), KEY.hex().encode()]
    for i, spelling in enumerate(spellings):
        (tmp_path / f"{i}.log").write_bytes(b'{"msg": "x", "v": "' + spelling + b'"}\n')
    (tmp_path / "clean.log").write_text("nothing to see\n")
    hits = scan(sorted(tmp_path.iterdir()), {"ns/keys:key.k-1": forms(KEY_TEXT)})
    assert hits == [f"ns/keys:key.k-1 in {tmp_path / f'{i}.log'}" for i in range(3)]


def test_each_token_of_a_tokens_file_is_looked_for_on_its_own(tmp_path: Path) -> None:
    harvest = Harvest()
    harvest.add_secret("ns/callers:tokens", b"alice:tok-alice-123456\n[admin] ops:tok-ops-654321\n")
    log = tmp_path / "pod.log"
    log.write_text("Authorization: Bearer tok-ops-654321\n")
    assert scan([log], harvest.secrets) == [f"ns/callers:tokens in {log}"]


def test_key_data_in_an_event_or_env_var_is_an_exposure() -> None:
    secret = {
        "kind": "Secret",
        "metadata": {"name": "bot-keys"},
        "data": {"key.k-1": base64.b64encode(KEY_TEXT).decode()},
    }
    event = {"kind": "Event", "metadata": {"name": "e"}, "message": f"rotated {KEY_TEXT.decode()}"}
    pod = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"env": []}]}}
    harvest = Harvest()
    harvest.take("ns", [secret, pod])
    assert harvest.key_exposures() == []
    harvest.take("ns2", [event])
    assert harvest.key_exposures() == [
        "ns/Secret/bot-keys:key.k-1 in ns2's Events, annotations, status or env"
    ]


def test_short_values_are_not_looked_for() -> None:
    assert forms(b"true") == set()
