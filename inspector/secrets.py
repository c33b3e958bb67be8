"""CRM tokens: where they come from, and how they are kept out of everything else.

Resolution order (RELIABILITY.md §5): `INSPECTOR_<CRM>_TOKEN` env var, then the OS keyring,
then (only if the user opted in with `--insecure-storage`) a 0600 file in the config dir.
A token file readable by group or others is refused, as ssh does.

A token is held in a `Secret` from the moment it is read: its repr/str is "***", so a crash
screen that prints locals (Textual's `show_locals=True`), a log line or an f-string cannot
show it. Only the HTTP layer calls `reveal()`, directly into the request header.

`auth.toml` in the config dir stores references and base URLs only, never a token:

    [hubspot]
    token_ref = "keyring:inspector/hubspot"
    base_url = "https://api.hubapi.com"
"""
from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

SOURCES = ("hubspot", "salesforce")
LABELS = {"hubspot": "HubSpot", "salesforce": "Salesforce"}
KEYRING_SERVICE = "inspector"


class SecretError(Exception):
    """Missing or unusable credentials: a configuration problem the user fixes (exit 2)."""


class Secret:
    """A token that never shows itself: repr/str are '***'; `reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise SecretError("empty token")
        object.__setattr__(self, "_value", value.strip())

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __rich_repr__(self):  # Rich's pretty printer (crash screens) asks this first
        yield "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Secret is immutable")

    def __reduce__(self):
        raise TypeError("a Secret cannot be pickled")

    def scrub(self, text: str) -> str:
        """`text` with this secret (if present) replaced by ***."""
        return text.replace(self._value, "***") if self._value and text else text


@dataclass(frozen=True)
class Credential:
    source: str
    token: Secret
    origin: str  # "env INSPECTOR_HUBSPOT_TOKEN" | "keyring" | "file /path"


def env_var(source: str) -> str:
    return f"INSPECTOR_{source.upper()}_TOKEN"


def url_env_var(source: str) -> str:
    return f"INSPECTOR_{source.upper()}_URL"


def config_dir() -> Path:
    override = os.environ.get("INSPECTOR_CONFIG_DIR")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_config_path

    return user_config_path("inspector", appauthor=False)


def token_file(source: str) -> Path:
    return config_dir() / "tokens" / f"{source}.token"


def auth_config_path() -> Path:
    return config_dir() / "auth.toml"


def _check(source: str) -> None:
    if source not in SOURCES:
        raise SecretError(f"unknown CRM {source!r} (use hubspot or salesforce)")


# -- reading ----------------------------------------------------------------------------------
def _getenv(env: dict[str, str] | None, name: str) -> str:
    return (os.environ if env is None else env).get(name, "")


def _keyring_get(source: str) -> Secret | None:
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:
        return None
    try:
        value = keyring.get_password(KEYRING_SERVICE, source)
    except (KeyringError, RuntimeError, OSError):
        return None
    return Secret(value) if value else None


def _read_token_file(path: Path) -> Secret | None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SecretError(f"{path}: cannot read the token file ({exc.strerror})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise SecretError(f"{path}: not a regular file; refusing to read a token from it")
        if mode & 0o077:
            raise SecretError(f"{path}: token file has mode {stat.S_IMODE(mode):04o} (readable by others); "
                              f"refusing it: run `chmod 600 {path}` or log in again")
        with os.fdopen(fd, "r", encoding="utf-8") as fh:
            fd = -1
            return Secret(fh.read())
    finally:
        if fd != -1:
            os.close(fd)


def resolve(source: str, env: dict[str, str] | None = None) -> Credential:
    """The token for `source`: env var, then keyring, then the opted-in 0600 file."""
    _check(source)
    name = env_var(source)
    if _getenv(env, name).strip():  # no local holds the environment or the raw value
        return Credential(source, Secret(_getenv(env, name)), f"env {name}")
    from_keyring = _keyring_get(source)
    if from_keyring is not None:
        return Credential(source, from_keyring, "keyring")
    path = token_file(source)
    from_file = _read_token_file(path)
    if from_file is not None:
        return Credential(source, from_file, f"file {path}")
    raise SecretError(f"no {LABELS[source]} token: set {name}, or run `inspector auth login {source}`")


def where(source: str, env: dict[str, str] | None = None) -> str:
    """Where the token would come from (for `auth status`); never the token itself."""
    try:
        return resolve(source, env).origin
    except SecretError as exc:
        return f"none ({exc})"


# -- writing ----------------------------------------------------------------------------------
def store_in_keyring(source: str, token: Secret) -> None:
    _check(source)
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:
        raise SecretError(_no_keyring(source)) from None
    try:
        keyring.set_password(KEYRING_SERVICE, source, token.reveal())
    except (KeyringError, RuntimeError, OSError):
        raise SecretError(_no_keyring(source)) from None
    write_auth_config(source, token_ref=f"keyring:{KEYRING_SERVICE}/{source}")


def _no_keyring(source: str) -> str:
    return (f"no OS keyring is available here; set {env_var(source)} in the environment, or run "
            f"`inspector auth login {source} --insecure-storage` to keep the token in a 0600 file")


def store_in_file(source: str, token: Secret) -> Path:
    """Write the token to a new 0600 file (atomic replace; never widens an existing file)."""
    _check(source)
    path = token_file(source)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:
        raise SecretError(f"{tmp}: cannot create the token file ({exc.strerror})") from None
    try:
        os.fchmod(fd, 0o600)  # independent of the umask
        os.write(fd, token.reveal().encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    write_auth_config(source, token_ref=f"file:{path}")
    return path


def read_auth_config() -> dict[str, dict[str, str]]:
    path = auth_config_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SecretError(f"{path}: cannot read ({exc})") from None
    return {k: {kk: str(vv) for kk, vv in v.items()} for k, v in data.items() if isinstance(v, dict)}


def write_auth_config(source: str, **values: str) -> Path:
    """Merge `values` into auth.toml (references and URLs only)."""
    import tomli_w

    for key in values:
        if "token" in key and key != "token_ref":
            raise ValueError("auth.toml holds token references, never tokens")
    data = read_auth_config()
    data.setdefault(source, {}).update({k: v for k, v in values.items() if v is not None})
    path = auth_config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(tomli_w.dumps(data).encode("utf-8"))
    os.replace(tmp, path)
    return path


def base_url(source: str, override: str | None = None, env: dict[str, str] | None = None) -> str | None:
    """Base URL: --base-url, then INSPECTOR_<CRM>_URL, then auth.toml, then the vendor default."""
    _check(source)
    if override:
        return override
    if _getenv(env, url_env_var(source)):
        return _getenv(env, url_env_var(source))
    try:
        configured = read_auth_config().get(source, {}).get("base_url")
    except SecretError:
        configured = None
    if configured:
        return configured
    return "https://api.hubapi.com" if source == "hubspot" else None
