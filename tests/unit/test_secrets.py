"""CRM tokens (RELIABILITY.md §5, §7.2 SEC-SEC-04..06): the opted-in token file is created 0600
under umask 022; a token file readable by others is refused with a clear message; no keyring
gives an actionable error and exit 2, no traceback and no file; the env var wins without
touching keyring or files; auth.toml holds references, never a token; a Secret never shows."""
from __future__ import annotations

import os
import pickle
import stat

import pytest
from click.testing import CliRunner

from inspector import secrets
from inspector.cli import main

CANARY = "pat-na1-CANARY-0000"


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECTOR_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")  # headless Linux
    for source in secrets.SOURCES:
        monkeypatch.delenv(secrets.env_var(source), raising=False)
        monkeypatch.delenv(secrets.url_env_var(source), raising=False)
    import keyring.core

    keyring.core._keyring_backend = None  # re-read PYTHON_KEYRING_BACKEND
    yield tmp_path / "cfg"
    keyring.core._keyring_backend = None


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _all_bytes(root) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_insecure_storage_login_creates_a_0600_file_and_config_holds_a_reference(cfg, umask022, db_path):
    r = CliRunner().invoke(main, ["--db", db_path, "auth", "login", "hubspot", "--insecure-storage",
                                  "--base-url", "https://api.hubapi.com"], input=CANARY + "\n")
    assert r.exit_code == 0, r.output
    path = secrets.token_file("hubspot")
    assert _mode(path) == 0o600 and path.read_text() == CANARY
    assert _mode(path.parent) == 0o700
    assert "0600 file" in r.stderr and CANARY not in r.output
    config = secrets.auth_config_path().read_text()
    assert f'token_ref = "file:{path}"' in config and 'base_url = "https://api.hubapi.com"' in config
    assert CANARY not in config and _mode(secrets.auth_config_path()) == 0o600
    cred = secrets.resolve("hubspot")
    assert cred.token.reveal() == CANARY and cred.origin == f"file {path}"
    r = CliRunner().invoke(main, ["--db", db_path, "auth", "status"])
    assert r.exit_code == 0 and f"HubSpot: token from file {path}" in r.stdout and CANARY not in r.output


def test_a_token_file_readable_by_others_is_refused(cfg, umask022, tmp_path, db_path):
    path = secrets.token_file("hubspot")
    path.parent.mkdir(parents=True)
    with open(path, "w") as fh:  # what a careless editor or `echo > file` leaves: 0644
        fh.write(CANARY)
    assert _mode(path) == 0o644
    with pytest.raises(secrets.SecretError) as info:
        secrets.resolve("hubspot")
    assert "mode 0644" in str(info.value) and "chmod 600" in str(info.value) and CANARY not in str(info.value)
    # the sync command refuses it too: one line, exit 2, nothing sent anywhere
    r = CliRunner().invoke(main, ["--db", db_path, "sync", "hubspot", "--base-url", "http://127.0.0.1:9"])
    assert r.exit_code == 2 and "readable by others" in r.stderr and "Traceback" not in r.output
    assert len(r.stderr.strip().splitlines()) == 1 and CANARY not in r.output
    # logging in again replaces it with a fresh 0600 file (the remedy the message names)
    r = CliRunner().invoke(main, ["--db", db_path, "auth", "login", "hubspot", "--insecure-storage"],
                           input="pat-na1-NEW-1111\n")
    assert r.exit_code == 0 and _mode(path) == 0o600
    assert secrets.resolve("hubspot").token.reveal() == "pat-na1-NEW-1111"


def test_a_symlinked_token_file_is_refused(cfg, tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text(CANARY)
    os.chmod(target, 0o600)
    path = secrets.token_file("hubspot")
    path.parent.mkdir(parents=True)
    path.symlink_to(target)
    with pytest.raises(secrets.SecretError, match="cannot read the token file"):
        secrets.resolve("hubspot")


def test_no_keyring_gives_an_actionable_error_no_traceback_no_file(cfg, db_path):
    r = CliRunner().invoke(main, ["--db", db_path, "auth", "login", "salesforce"], input=CANARY + "\n")
    assert r.exit_code == 2
    assert "no OS keyring is available here" in r.stderr
    assert "INSPECTOR_SALESFORCE_TOKEN" in r.stderr and "--insecure-storage" in r.stderr
    assert "Traceback" not in r.output and CANARY not in r.output
    assert len(r.stderr.strip().splitlines()) == 1
    assert not cfg.exists() or CANARY.encode() not in _all_bytes(cfg)
    assert not secrets.token_file("salesforce").exists()
    # and with no token anywhere, sync names both ways out
    r = CliRunner().invoke(main, ["--db", db_path, "sync", "hubspot", "--base-url", "http://127.0.0.1:9"])
    assert r.exit_code == 2 and "set INSPECTOR_HUBSPOT_TOKEN, or run `inspector auth login hubspot`" in r.stderr


def test_no_token_on_stdin_is_a_usage_error(cfg, db_path):
    r = CliRunner().invoke(main, ["--db", db_path, "auth", "login", "hubspot", "--insecure-storage"], input="\n")
    assert r.exit_code == 2 and "no token given" in r.stderr
    assert not secrets.token_file("hubspot").exists()


def test_env_var_wins_without_touching_keyring_or_files(cfg, monkeypatch):
    path = secrets.token_file("hubspot")
    path.parent.mkdir(parents=True)
    path.write_text("file-token")
    os.chmod(path, 0o644)  # would be refused if it were read at all

    def boom(*a, **k):
        raise AssertionError("the keyring was consulted")

    import keyring

    monkeypatch.setattr(keyring, "get_password", boom)
    monkeypatch.setenv("INSPECTOR_HUBSPOT_TOKEN", CANARY)
    cred = secrets.resolve("hubspot")
    assert cred.token.reveal() == CANARY and cred.origin == "env INSPECTOR_HUBSPOT_TOKEN"
    assert secrets.where("hubspot") == "env INSPECTOR_HUBSPOT_TOKEN"


def test_auth_config_never_takes_a_token():
    with pytest.raises(ValueError, match="never tokens"):
        secrets.write_auth_config("hubspot", token=CANARY)


def test_a_secret_never_shows_itself():
    s = secrets.Secret(f"  {CANARY}\n")
    assert s.reveal() == CANARY
    shown = [repr(s), str(s), f"{s}", f"{s!r}", "%s" % s, format(s, ">30"), repr({"token": s}), repr([s])]
    assert all(CANARY not in x for x in shown)
    with pytest.raises(TypeError):
        pickle.dumps(s)
    with pytest.raises(AttributeError):
        s._value = "x"
    assert s.scrub(f"echo {CANARY} back") == "echo *** back"
    with pytest.raises(secrets.SecretError):
        secrets.Secret("   ")
    from rich.pretty import pretty_repr

    assert CANARY not in pretty_repr({"token": s})


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "inspector.db")
