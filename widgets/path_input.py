"""PathInput: a file path box that completes folder and CSV file names (Tab or →)."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

from textual.binding import Binding
from textual.suggester import Suggester
from textual.widgets import Input

SUFFIXES = (".csv", ".txt")


class PathSuggester(Suggester):
    """Suggests the first folder or `.csv`/`.txt` file that completes what was typed; relative
    paths are read from `base`."""

    def __init__(self, base: Path) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.base = base

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        return await asyncio.to_thread(self._complete, value)

    def _complete(self, value: str) -> str | None:
        folder, _sep, prefix = value.rpartition("/") if "/" in value else ("", "", value)
        where = Path(os.path.expanduser(folder + "/" if folder or value.startswith("/") else ".") or "/")
        if not where.is_absolute():
            where = self.base / where
        try:
            names = sorted(e.name + ("/" if e.is_dir() else "") for e in os.scandir(where)
                           if e.name.startswith(prefix) and not e.name.startswith(".")
                           and (e.is_dir() or e.name.lower().endswith(SUFFIXES)))
        except OSError:
            return None
        if not names:
            return None
        # the longest completion all matches share, or the only match
        common = os.path.commonprefix(names)
        done = names[0] if len(names) == 1 else common
        return value + done[len(prefix):] if len(done) > len(prefix) else None


class PathInput(Input):
    """An Input whose Tab accepts the completion shown (and moves on when there is none)."""

    BINDINGS = [Binding("tab", "complete", "Complete", show=False)]

    def action_complete(self) -> None:
        suggestion = self._suggestion
        if suggestion and len(suggestion) > len(self.value) and suggestion.startswith(self.value):
            self.value = suggestion
            self.cursor_position = len(self.value)
        else:
            self.screen.focus_next()
