"""A helper Python process that exchanges pickled messages over its stdin and stdout.

Used where a second core pays: the demo generator produces rows while the parent writes
them, and a big CRM sync writes pages while the parent reads the next ones. A plain
subprocess running `python -c "from <module> import <function>; <function>()"` rather than
multiprocessing, whose spawn mode re-runs the caller's __main__ (scripts and `python -c`
callers are not written for that). Messages are length-prefixed pickles; a failure in the
helper is sent as a negative length and its traceback, and raised in the parent as
`HelperError`. What travels is rows, pages and a store URL; a PostgreSQL URL may hold a
password, which is why it goes through the pipe (private to the two processes) and never
into the helper's arguments or environment.
"""
from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import IO, Any

_HEAD = struct.Struct("<q")


class HelperError(RuntimeError):
    """The helper process failed (its traceback is the message) or stopped early."""


def start(module: str, function: str, what: str) -> subprocess.Popen:
    """Start `module.function()` in a new Python; `what` names it in errors."""
    package_root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)}
    # stderr goes to a file, not the terminal (a TUI may be drawing there); a helper that
    # dies before it can report shows its last stderr line in the parent's error
    errors = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-c", f"from {module} import {function}; {function}()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, env=env)
    proc.what = what  # type: ignore[attr-defined]
    proc.errors = errors  # type: ignore[attr-defined]
    return proc


def _stopped(proc: subprocess.Popen, how: str) -> HelperError:
    code = proc.wait()
    last = ""
    errors = getattr(proc, "errors", None)
    if errors is not None:
        errors.seek(0)
        lines = errors.read().decode(errors="replace").strip().splitlines()
        last = f": {lines[-1]}" if lines else ""
    return HelperError(f"the {proc.what} process {how} (exit code {code}){last}")


def send(stream: IO[bytes], obj: Any) -> None:
    send_bytes(stream, pickle.dumps(obj, pickle.HIGHEST_PROTOCOL))


def send_bytes(stream: IO[bytes], data: bytes) -> None:
    stream.write(_HEAD.pack(len(data)))
    stream.write(data)
    stream.flush()


def send_failure(stream: IO[bytes]) -> None:
    """In the helper, inside `except`: the traceback, for the parent to raise."""
    data = traceback.format_exc().encode()
    stream.write(_HEAD.pack(-len(data)))
    stream.write(data)
    stream.flush()


def receive(proc: subprocess.Popen, stream: IO[bytes] | None = None) -> Any:
    """The next message from the helper (`proc`), or from `stream` in the helper itself
    (`proc` None): raises EOFError when the other side closed cleanly before a message."""
    src = stream if stream is not None else proc.stdout
    head = src.read(_HEAD.size)
    if not head:
        if proc is None:
            raise EOFError
        raise _stopped(proc, "stopped")
    (size,) = _HEAD.unpack(head) if len(head) == _HEAD.size else (None,)
    data = src.read(abs(size)) if size is not None else b""
    if size is None or len(data) < abs(size):
        if proc is None:
            raise HelperError("the parent process stopped mid-message")
        raise _stopped(proc, "stopped mid-message")
    if size < 0:
        raise HelperError(f"the {proc.what} failed:\n" + data.decode(errors="replace"))
    return pickle.loads(data)


def stop(proc: subprocess.Popen, *, finished: bool) -> None:
    """Close the pipes and reap the helper; kill it first unless it `finished` its work."""
    if not finished and proc.poll() is None:
        proc.kill()
    for pipe in (proc.stdin, proc.stdout):
        try:
            if pipe is not None:
                pipe.close()
        except OSError:  # a broken pipe to a helper that is gone
            pass
    proc.wait()
    errors = getattr(proc, "errors", None)
    if errors is not None:
        errors.close()
