"""CsvTree: a DirectoryTree that lists folders and CSV/text files only."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rich.text import Text
from textual.widgets import DirectoryTree

from inspector.widgets.text import untrusted_text

SUFFIXES = (".csv", ".txt")


class CsvTree(DirectoryTree):
    """Folders (not hidden) and `.csv`/`.txt` files. File names are outside text: labels are
    plain `Text` with control characters replaced, never markup."""

    DEFAULT_CSS = """
    CsvTree { height: 1fr; }
    """

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith(".")
                and (self._safe_is_dir(p) or p.suffix.lower() in SUFFIXES)]

    def process_label(self, label: str | Text) -> Text:
        text = untrusted_text(label) if isinstance(label, str) else label
        return text.split()[0] if text.plain else text
