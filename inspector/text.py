"""Outside text is data. `display_safe` is the one place that makes it fit for a terminal.

Control characters (C0 except tab and newline, DEL, C1) and bidi overrides are replaced by
U+FFFD so a CRM field cannot send escape sequences to the terminal or reorder what is shown.
Markup safety is the UI's job: screens wrap the result in `Content`/`Text`, never a markup string.
"""
from __future__ import annotations

import re

_CTRL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def display_safe(value: object) -> str:
    if value is None:
        return ""
    return _CTRL.sub("\ufffd", str(value))


def one_line(value: object) -> str:
    """Like display_safe, and newlines/tabs become spaces (table cells, titles)."""
    return display_safe(value).replace("\n", " ").replace("\t", " ")
