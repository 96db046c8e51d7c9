"""Settings, declared once as data: name, type, default and help.

Values come from (later wins) the defaults here, a TOML file (``--config`` or
``TILSIT_CONFIG``), ``TILSIT_<NAME>`` environment variables, and explicit
overrides (command-line options). Settings are passed in, never global.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["SETTINGS", "InvalidSetting", "Setting", "Settings", "load_settings"]


class InvalidSetting(ValueError):
    """A setting whose name is unknown or whose value has the wrong type."""


@dataclass(frozen=True)
class Setting:
    name: str
    type: type
    default: Any
    help: str


MiB = 1024 * 1024

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "data", Path, Path("tilsit-data"), "Data directory: database, blobs and the static tree."
    ),
    Setting(
        "database_url",
        str,
        "",
        "SQLAlchemy URL of the database; empty means SQLite at <data>/tilsit.db."
        " PostgreSQL: postgresql+psycopg://user@host/db.",
    ),
    Setting("host", str, "127.0.0.1", "Address that `tilsit serve` listens on."),
    Setting("port", int, 8080, "Port that `tilsit serve` listens on."),
    Setting("workers", int, 1, "Server worker processes."),
    Setting(
        "access_log",
        bool,
        True,
        "Log one line per request (turn off when nginx in front keeps the access log).",
    ),
    Setting("tls_cert", str, "", "PEM certificate for HTTPS (with tls_key)."),
    Setting("tls_key", str, "", "PEM private key for HTTPS (with tls_cert)."),
    Setting("default_index", str, "main", "Index served at the root paths (/simple/, /legacy/)."),
    Setting(
        "base_url",
        str,
        "",
        "Public URL of the server (https://pypi.example.com); when set, pages carry absolute"
        " file URLs, as some mirror clients expect; empty means root-relative URLs"
        " (/packages/...), which every installer resolves against the index's host.",
    ),
    Setting("max_upload_size", int, 100 * MiB, "Largest accepted distribution file, in bytes."),
    Setting("page_max_age", int, 600, "Cache-Control max-age of simple pages, in seconds."),
    Setting(
        "page_cache_size",
        int,
        64 * MiB,
        "Bytes of rendered pages the server keeps in memory (0 disables the cache).",
    ),
)


@dataclass(frozen=True)
class Settings:
    data: Path = Path("tilsit-data")
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    access_log: bool = True
    tls_cert: str = ""
    tls_key: str = ""
    default_index: str = "main"
    base_url: str = ""
    max_upload_size: int = 100 * MiB
    page_max_age: int = 600
    page_cache_size: int = 64 * MiB
    sources: tuple[str, ...] = field(default=(), compare=False)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data / 'tilsit.db'}"

    @property
    def blob_dir(self) -> Path:
        return self.data / "blobs"

    @property
    def tree_dir(self) -> Path:
        return self.data / "tree"

    @property
    def tmp_dir(self) -> Path:
        return self.data / "tmp"


def _coerce(setting: Setting, value: object, origin: str) -> object:
    try:
        if setting.type is bool:
            if isinstance(value, str):
                return value.strip().lower() in {"1", "true", "yes", "on"}
            return bool(value)
        if setting.type is int and isinstance(value, bool):
            raise TypeError("a boolean is not a number")
        return setting.type(value)
    except (TypeError, ValueError) as exc:
        raise InvalidSetting(
            f"{origin}: {setting.name} must be {setting.type.__name__}, got {value!r}"
        ) from exc


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    env = os.environ if environ is None else environ
    by_name = {s.name: s for s in SETTINGS}
    values: dict[str, object] = {s.name: s.default for s in SETTINGS}
    sources: list[str] = []
    path = config_file or (Path(env["TILSIT_CONFIG"]) if env.get("TILSIT_CONFIG") else None)
    if path is not None:
        with path.open("rb") as fh:
            document = tomllib.load(fh)
        table = document.get("tilsit", document)
        for key, value in table.items():
            name = key.replace("-", "_")
            if name not in by_name:
                raise InvalidSetting(f"{path}: unknown setting {key!r}")
            values[name] = _coerce(by_name[name], value, str(path))
        sources.append(str(path))
    for setting in SETTINGS:
        key = f"TILSIT_{setting.name.upper()}"
        if key in env:
            values[setting.name] = _coerce(setting, env[key], key)
            sources.append(key)
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name not in by_name:
            raise InvalidSetting(f"unknown setting {name!r}")
        values[name] = _coerce(by_name[name], value, f"--{name.replace('_', '-')}")
    declared = {f.name for f in fields(Settings)} - {"sources"}
    assert declared == set(by_name), "Settings and SETTINGS must declare the same names"
    return Settings(**values, sources=tuple(sources))  # type: ignore[arg-type]
