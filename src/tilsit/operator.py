"""Mistakes an operator can fix, and the checks that find them before anything is written.

Every error here is one line naming the file, directory or setting at fault and
the fix; the command line's entry point (:mod:`tilsit.cli`) prints it as
``error: <line>`` and exits 1, so every command gets the same form without a
try/except of its own. Hierarchy::

    OperatorError
    ├── ConfigError          the settings file or a setting (tilsit.config.InvalidSetting)
    ├── DataDirMissing       no data directory (or no database) where the command looked
    ├── NotWritable          a directory or file tilsit must write, and cannot
    ├── WrongOwner           the data directory belongs to another user than the one running
    ├── PortUnavailable      the listen address cannot be bound (in use, privileged, unknown)
    └── TlsFileError         a TLS certificate or key that is missing or unusable

Other modules make their own operator errors subclasses (a loose secret file's
mode, ``tilsit.store.private.LooseSecretMode``; an unsafe or missing key file,
``tilsit.trust.keys.KeyError_``), so the entry point catches them all at once.

This module imports nothing of tilsit, so any layer may raise these.
"""

from __future__ import annotations

import errno
import os
import pwd
import socket
import ssl
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "ConfigError",
    "DataDirMissing",
    "NotWritable",
    "OperatorError",
    "PortUnavailable",
    "TlsFileError",
    "WrongOwner",
    "check_owner",
    "check_port",
    "check_tls_files",
    "check_writable",
    "first_unwritable",
    "owner_name",
    "unwritable_message",
]


class OperatorError(Exception):
    """A mistake in how tilsit is set up or run; its text is the whole message, one line."""


class ConfigError(OperatorError):
    """The settings file cannot be read or parsed, or a setting is unknown or mistyped."""


class DataDirMissing(OperatorError):
    """A command other than ``serve`` or ``init`` found no data directory to work on."""


class NotWritable(OperatorError):
    """A directory (or file) tilsit writes is not writable by the user running it."""


class WrongOwner(OperatorError):
    """The data directory belongs to another user: files made now would be theirs to fix."""


class PortUnavailable(OperatorError):
    """``serve`` cannot listen on the configured host and port."""


class TlsFileError(OperatorError):
    """The TLS certificate or key file is missing, unreadable, or not a matching pair."""


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def owner_name(path: Path) -> str:
    """``name (uid N)`` of the owner of ``path``, or just the uid when it has no name."""
    return _user(path.stat().st_uid)


def _running_as() -> str:
    return _user(os.geteuid())


def unwritable_message(path: Path, problem: str = "is not writable") -> str:
    """One line: ``path`` cannot be used, who owns it, who is running, the fix."""
    # A file that could not be created does not exist: what decides is the
    # directory it would have been made in (its filesystem, its owner).
    existing = next((p for p in (path, *path.parents) if os.path.lexists(p)), path)
    try:
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        return (
            f"{path} {problem}: it is on a read-only filesystem; mount it read-write, or"
            " choose another data directory (--data)"
        )
    try:
        owner = owner_name(existing)
    except OSError:
        owner = "an unknown owner"
    holder = "it" if existing == path else str(existing)
    return (
        f"{path} {problem} by {_running_as()}: {holder} belongs to {owner};"
        " run tilsit as the owner of the data directory, or give it back to that user"
        " (chown -R)"
    )


def first_unwritable(paths: Iterable[Path]) -> Path | None:
    """The first existing directory or file of ``paths`` this process cannot write.

    ``os.access`` asks the kernel with the process's real ids, which is what a
    later write will meet (tilsit never runs set-uid).
    """
    for path in paths:
        if path.exists() and not os.access(path, os.W_OK | (os.X_OK if path.is_dir() else 0)):
            return path
    return None


def check_writable(paths: Iterable[Path]) -> None:
    """Raise :class:`NotWritable` for the first of ``paths`` this process cannot write."""
    found = first_unwritable(paths)
    if found is not None:
        raise NotWritable(unwritable_message(found))


def check_owner(data: Path) -> None:
    """Refuse to work on a data directory that belongs to another user.

    A command run as root (or any other user) on the server's data directory
    would leave files the server cannot write later (a page directory, a lock,
    SQLite's side files), and uploads would then fail after their commit.
    """
    uid = data.stat().st_uid
    if uid != os.geteuid():
        try:
            as_owner = f"sudo -u {pwd.getpwuid(uid).pw_name} tilsit ..."
        except KeyError:
            as_owner = f"setpriv --reuid={uid} tilsit ..."
        raise WrongOwner(
            f"data directory {data} belongs to {_user(uid)}, not to {_running_as()} who runs"
            f" this command; run tilsit as its owner ({as_owner})"
        )


def check_port(host: str, port: int) -> None:
    """Bind ``host:port`` once and let go, so a taken port is named before start-up.

    The server binds it again right after; a race with another process in
    between still ends in the server's own error, only later.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PortUnavailable(
            f"host {host!r} (setting: host) is not an address of this machine: {exc.strerror};"
            " use an address such as 127.0.0.1 or 0.0.0.0 (--host)"
        ) from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        # As uvicorn does: a port in TIME_WAIT after a restart is free to bind.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                problem = "is already in use by another program"
                fix = "stop that program or choose another port (--port, setting: port)"
            elif exc.errno == errno.EACCES:
                problem = "needs privileges to bind (ports below 1024)"
                fix = "choose a port above 1023 (--port) and put nginx in front"
            else:
                problem = f"cannot be bound: {exc.strerror}"
                fix = "check the host and port settings (--host, --port)"
            raise PortUnavailable(f"port {port} on {host} {problem}; {fix}") from None


def check_tls_files(cert: str, key: str) -> None:
    """Load the certificate and key as the server will, naming the file that fails."""
    for path, setting in ((cert, "tls_cert"), (key, "tls_key")):
        target = Path(path)
        if not target.is_file():
            raise TlsFileError(
                f"{setting} file {path} does not exist; give the path of a PEM file"
                f" (--{setting.replace('_', '-')}, setting: {setting})"
            )
        if not os.access(target, os.R_OK):
            raise TlsFileError(
                f"{setting} file {path} is not readable by {_running_as()}; make it readable"
                " by the user that runs tilsit"
            )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise TlsFileError(
            f"tls_cert {cert} and tls_key {key} are not a PEM certificate and its private key"
            f" ({exc.reason or exc}); give a matching pair"
        ) from None
