"""The agent's profile: instructions, description and skills (issue 9).

Checks: with PROFILE_DIR the instructions are read again when the file changes, so a
running runtime answers in the new persona without a restart; a skills.json that turns
invalid keeps the last good skills; the settings' values apply without a directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent_runtime.config import Skill
from agent_runtime.profile import ProfileSource
from tests.support.runtime import MakeClient, make_settings


def touch_later(path: Path, text: str) -> None:
    """Write ``text`` with a later mtime, as the kubelet's swap of ..data would look."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))


async def test_an_edited_instructions_file_changes_the_persona_without_a_restart(
    make_client: MakeClient, tmp_path: Path
) -> None:
    profile = tmp_path / "profile"
    profile.mkdir()
    touch_later(profile / "instructions", "You are Ada.\nBe brief.")
    client = await make_client(overrides={"profile_dir": profile})
    first = await client.post("/v1/sessions/p/messages", json={"content": "hello"})
    assert (await first.json())["reply"].startswith("[Ada] ")
    touch_later(profile / "instructions", "You are Grace.")
    second = await client.post("/v1/sessions/p/messages", json={"content": "hello"})
    assert (await second.json())["reply"].startswith("[Grace] ")


def test_invalid_skills_keep_the_last_good_ones(tmp_path: Path) -> None:
    touch_later(tmp_path / "skills.json", '[{"id": "faq", "name": "FAQ", "tags": ["help"]}]')
    source = ProfileSource(make_settings(tmp_path, profile_dir=tmp_path, description="base"))
    good = (Skill(id="faq", name="FAQ", tags=["help"]),)
    assert source.current().skills == good
    touch_later(tmp_path / "skills.json", '[{"id": "", "name": 5}]')
    assert source.current().skills == good
    assert source.current().description == "base"  # no description file: the setting's


def test_without_a_directory_the_settings_values_apply(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        instructions="You are Ada.",
        description="Answers questions",
        skills=[{"id": "faq", "name": "FAQ"}],
    )
    current = ProfileSource(settings).current()
    assert (current.instructions, current.description) == ("You are Ada.", "Answers questions")
    assert [s.id for s in current.skills] == ["faq"]
