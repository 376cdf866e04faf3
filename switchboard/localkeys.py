"""The keys an embedded server makes for itself on first start, kept in a file of its own.

The file (JSON, mode 0600, in a 0700 directory) holds a signing key, a service key for the token
API and an admin key.  It is made once, atomically (two servers starting at once end up with the
same keys), and refused when other users can read it.  ``switchboard admin`` reads the admin key
from it, so the CLI works on the same machine without flags.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

import msgspec

__all__ = ["LocalKeys", "LocalKeysError", "default_state_path", "state_path", "load_or_create", "read"]

#: The service id the embedded token API knows its generated service key by.
LOCAL_SERVICE = "local"


class LocalKeysError(Exception):
    """The state file cannot be used; the message says which file and why."""


class LocalKeys(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    signing_key: str
    service_id: str = LOCAL_SERVICE
    service_key: str
    admin_key: str


def default_state_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "switchboard" / "keys.json"


def state_path(configured: str) -> Path:
    """The state file: ``keys.state_file`` when set, else :func:`default_state_path`."""
    return Path(configured).expanduser() if configured else default_state_path()


def _new_keys() -> LocalKeys:
    return LocalKeys(
        signing_key=secrets.token_urlsafe(32),
        service_key=secrets.token_urlsafe(32),
        admin_key=secrets.token_urlsafe(32),
    )


def read(path: Path) -> LocalKeys:
    """The keys in ``path``; :class:`LocalKeysError` when missing, readable by others or malformed."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise LocalKeysError(f"{path} does not exist") from None
    except OSError as exc:
        raise LocalKeysError(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fh.fileno()).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise LocalKeysError(f"{path} is readable by other users (mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}")
        raw = fh.read()
    try:
        return msgspec.json.decode(raw, type=LocalKeys)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise LocalKeysError(f"{path} is not a switchboard key file: {exc}") from None


def load_or_create(path: Path) -> tuple[LocalKeys, bool]:
    """The keys in ``path``, made there first when it does not exist; and whether they were made now."""
    if path.exists():
        return read(path), False
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(msgspec.json.encode(_new_keys()))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(temporary, path)  # fails if another process made the file meanwhile: theirs wins
            created = True
        except FileExistsError:
            created = False
        finally:
            temporary.unlink()
    except OSError as exc:
        raise LocalKeysError(f"cannot create {path}: {exc.strerror}") from None
    return read(path), created
