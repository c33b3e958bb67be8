"""The core never imports Textual; no code escapes markup (outside text is never markup)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE_MODULES = [
    "inspector", "inspector.cli", "inspector.playbook", "inspector.rules", "inspector.storage.repo",
    "inspector.storage.db", "inspector.services", "inspector.pipeline", "inspector.demo",
]


def _run(code: str, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSPECTOR_")}
    env["TZ"] = "UTC"
    return subprocess.run([sys.executable, *args, "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_does_not_import_textual(module):
    proc = _run(f"import sys, {module}; print('textual' in sys.modules, 'rich' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    textual_loaded, _rich_loaded = proc.stdout.split()
    assert textual_loaded == "False", f"importing {module} loads textual"


def test_probe_detects_textual():
    """The check above can fail: importing a screen does load textual."""
    proc = _run("import sys, inspector.screens.app; print('textual' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"


_TEXTUAL_IMPORT = re.compile(r"^\s*(import\s+textual\b|from\s+textual\b)", re.M)


def _py_files(*dirs: str) -> list[Path]:
    files = [p for d in dirs for p in (REPO / d).rglob("*.py") if "__pycache__" not in p.parts]
    assert files, dirs
    return files


def test_no_textual_import_line_in_core():
    offenders = [str(p.relative_to(REPO)) for p in _py_files("inspector")
                 if _TEXTUAL_IMPORT.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_static_pattern_matches_real_imports():
    assert _TEXTUAL_IMPORT.search("from textual.app import App\n")
    assert _TEXTUAL_IMPORT.search("x = 1\n    import textual\n")
    assert not _TEXTUAL_IMPORT.search("# textual is not imported here\nimport textwrap\n")


_ESCAPE = re.compile(
    r"markup\.escape\b"  # rich.markup.escape(...), markup.escape(...)
    r"|from\s+(rich|textual)\.markup\s+import\s+[^\n]*\bescape\b")


def test_no_markup_escape_anywhere():
    offenders = [str(p.relative_to(REPO)) for p in _py_files("inspector", "screens", "widgets")
                 if _ESCAPE.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_escape_pattern_matches():
    assert _ESCAPE.search("from rich.markup import escape\n")
    assert _ESCAPE.search("from textual.markup import Content, escape as esc\n")
    assert _ESCAPE.search("import rich.markup\nrich.markup.escape(x)\n")
    assert not _ESCAPE.search("def escape_csv(value): ...\n")


def test_headless_cli_commands_do_not_import_textual(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from click.testing import CliRunner
        from inspector.cli import main
        r = CliRunner()
        codes = [
            r.invoke(main, ["--help"]).exit_code,
            r.invoke(main, ["playbook", "check", "data/playbook.toml"]).exit_code,
            r.invoke(main, ["playbook", "show"]).exit_code,
            r.invoke(main, ["demo", "--deals", "20", "--db", {str(tmp_path / 'd.db')!r}, "--no-tui"]).exit_code,
            r.invoke(main, ["--db", {str(tmp_path / 'd.db')!r}, "db", "info"]).exit_code,
        ]
        print(codes, 'textual' in sys.modules)
    """)
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[0, 0, 0, 0, 0] False"


@pytest.mark.parametrize("argv", [["--help"], ["playbook", "check", "data/playbook.toml"]])
def test_entry_point_imports_no_textual(argv):
    """`python -m inspector ...` as a user runs it; -X importtime lists every import made."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSPECTOR_")}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "inspector", *argv], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "inspector.cli" in imported  # the probe sees our own imports
    assert not {m for m in imported if m == "textual" or m.startswith("textual.")}
