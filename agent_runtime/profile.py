"""Who the agent is: its instructions (the system message), description and skills.

They come from the settings (``INSTRUCTIONS``, ``DESCRIPTION``, ``SKILLS``) or, when
``PROFILE_DIR`` is set, from files there that the operator fills from the Agent's spec (a
ConfigMap volume, which the kubelet updates in place). Each file is read again when its
modification time or size changed, checked with one ``stat`` per turn, so an edited
``spec.instructions`` reaches the running pods without rolling them. A file that
disappears or holds invalid skills leaves the last good value in place and logs why.
Called by ``turns.py`` (the system message) and the protocol surfaces (card, models).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from agent_runtime.config import Settings, Skill

log = logging.getLogger("agent_runtime.profile")

INSTRUCTIONS_FILE = "instructions"
DESCRIPTION_FILE = "description"
SKILLS_FILE = "skills.json"
_SKILLS = TypeAdapter(list[Skill])


@dataclass(frozen=True, slots=True)
class Profile:
    instructions: str
    description: str
    skills: tuple[Skill, ...]


class _WatchedFile:
    """A file's text, read again only when its (mtime, size) changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None
        self.text: str | None = None

    def read(self) -> str | None:
        try:
            stat = os.stat(self.path)  # follows the kubelet's ..data symlink swap
        except OSError:
            return self.text
        seen = (stat.st_mtime_ns, stat.st_size)
        if seen != self._seen:
            try:
                self.text = self.path.read_text(encoding="utf-8")
                self._seen = seen
            except (OSError, UnicodeDecodeError) as error:
                log.warning(
                    "profile file unreadable; keeping the last good value",
                    extra={"fields": {"file": self.path.name, "error": type(error).__name__}},
                )
        return self.text


class ProfileSource:
    """The current profile: the settings' values, overridden by ``PROFILE_DIR``'s files."""

    def __init__(self, settings: Settings) -> None:
        self._base = Profile(settings.instructions, settings.description, tuple(settings.skills))
        directory = settings.profile_dir
        self._files = (
            None
            if directory is None
            else {
                name: _WatchedFile(directory / name)
                for name in (INSTRUCTIONS_FILE, DESCRIPTION_FILE, SKILLS_FILE)
            }
        )
        self._skills_text: str | None = None
        self._skills = self._base.skills

    def current(self) -> Profile:
        if self._files is None:
            return self._base
        instructions = self._files[INSTRUCTIONS_FILE].read()
        description = self._files[DESCRIPTION_FILE].read()
        return Profile(
            self._base.instructions if instructions is None else instructions.strip(),
            self._base.description if description is None else description.strip(),
            self._current_skills(),
        )

    def _current_skills(self) -> tuple[Skill, ...]:
        assert self._files is not None
        text = self._files[SKILLS_FILE].read()
        if text is None or text == self._skills_text:
            return self._skills
        self._skills_text = text
        try:
            self._skills = tuple(_SKILLS.validate_python(json.loads(text)))
        except (ValueError, ValidationError) as error:
            log.warning(
                "skills.json is invalid; keeping the last good skills",
                extra={"fields": {"error": str(error).splitlines()[0]}},
            )
        return self._skills
