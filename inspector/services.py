"""Services: the plain bundle the CLI builds and hands to the App (composition root input)."""
from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path

from inspector.clock import Clock, SystemClock
from inspector.playbook import Playbook, load_playbook
from inspector.storage.db import ensure_schema, make_engine, resolve_url, sqlite_path
from inspector.storage.repo import Store


@dataclass
class Services:
    store: Store
    playbook: Playbook
    clock: Clock
    actor: str
    read_only: bool = False
    db_label: str = ""


def default_actor() -> str:
    return os.environ.get("INSPECTOR_USER") or getpass.getuser()


def user_playbook_path() -> Path:
    from platformdirs import user_config_path

    return user_config_path("inspector", appauthor=False) / "playbook.toml"


def resolve_playbook(path: Path | str | None) -> Playbook:
    chosen = path or os.environ.get("INSPECTOR_PLAYBOOK")
    if not chosen:
        candidate = user_playbook_path()
        chosen = candidate if candidate.exists() else None
    return load_playbook(chosen)


def build_services(db: str | os.PathLike | None = None, *, clock: Clock | None = None,
                   playbook: Playbook | None = None, playbook_path: Path | str | None = None,
                   read_only: bool = False, actor: str | None = None) -> Services:
    url = resolve_url(db)
    engine = make_engine(url, read_only=read_only)
    if not read_only:
        ensure_schema(engine)
    path = sqlite_path(url)
    label = str(path) if path else engine.url.render_as_string(hide_password=True)
    return Services(store=Store(engine), playbook=playbook or resolve_playbook(playbook_path),
                    clock=clock or SystemClock(), actor=actor or default_actor(),
                    read_only=read_only, db_label=label)
