"""The one way outside strings reach the screen.

Textual parses plain `str` as markup, and escaping does not make arbitrary text safe (see
RELIABILITY.md §1.3). Widgets get `Content` (Textual) or `Text` (Rich) built from
`display_safe` output, so text is never parsed and control characters never reach the
terminal. Styled text with data uses `Content.from_markup(template, name=value)`, where the
data is substituted after parsing.
"""
from __future__ import annotations

from rich.text import Text
from textual.content import Content

from inspector.text import display_safe, one_line


def untrusted(value: object) -> Content:
    return Content(display_safe(value))


def untrusted_line(value: object) -> Content:
    return Content(one_line(value))


def untrusted_text(value: object) -> Text:
    return Text(display_safe(value))


def styled(template: str, **values: object) -> Content:
    """`template` is our own markup; `values` are outside data, inserted literally."""
    return Content.from_markup(template, **{k: display_safe(v) for k, v in values.items()})
