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

from tilsit.config.cache_control import KINDS as CACHE_CONTROL_KINDS
from tilsit.config.cache_control import CacheControl, InvalidCacheControl, check_cache_control
from tilsit.config.limits import InvalidLimit, parse_limits
from tilsit.config.origins import parse_origins
from tilsit.operator import ConfigError

__all__ = [
    "SETTINGS",
    "InvalidSetting",
    "Setting",
    "Settings",
    "load_settings",
    "read_config_table",
]


class InvalidSetting(ConfigError, ValueError):
    """A settings file that cannot be read or parsed, or a setting whose name is unknown
    or whose value has the wrong type; the message names the file or variable."""


@dataclass(frozen=True)
class Setting:
    name: str
    type: type
    default: Any
    help: str
    # For a setting that names one of a few modes: the allowed values.
    choices: tuple[str, ...] = ()


KiB = 1024
MiB = 1024 * KiB

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
        " (/packages/...), which every installer resolves against the index's host."
        " Links in account mail are built on it; with neither it nor allowed_hosts set,"
        " mail that needs a link (password reset, address confirmation) is not sent.",
    ),
    Setting(
        "allowed_hosts",
        str,
        "",
        "When base_url is empty: the Host header values (host or host:port, comma"
        " separated) that links in account mail may be built on; a request naming any other"
        " host gets no mail.",
    ),
    Setting("max_upload_size", int, 100 * MiB, "Largest accepted distribution file, in bytes."),
    Setting(
        "upstream_page_max_size",
        int,
        64 * MiB,
        "Largest simple page a mirror or proxy reads from its upstream, in bytes after"
        " decompression; a larger page fails that project (the server keeps serving)."
        " Files are capped by the size their page declares, else by max_upload_size.",
    ),
    Setting(
        "upstream_file_origins",
        str,
        "",
        "Origins (scheme://host[:port], comma- or space-separated) that a mirror or proxy may"
        " follow a redirect to when fetching a file, besides its upstream's own origin"
        " (e.g. https://files.pythonhosted.org). A redirect for a page is never followed to"
        " another origin, and upstream credentials never leave the upstream's origin.",
    ),
    Setting("page_max_age", int, 600, "Cache-Control max-age of simple pages, in seconds."),
    Setting(
        "page_cache_size",
        int,
        64 * MiB,
        "Bytes of rendered pages the server keeps in memory (0 disables the cache).",
    ),
    Setting(
        "index_page_coalesce_size",
        int,
        256 * KiB,
        "`tilsit serve` renders an index's project list (its /simple/ page) at most once per"
        " index_page_interval, for all the writes that changed it, once the page's JSON is this"
        " many bytes (about 6,000 projects); smaller lists are rendered inside each write."
        " 0 coalesces every list.",
    ),
    Setting(
        "index_page_interval",
        float,
        1.0,
        "Seconds between renders of a coalesced project list (index_page_coalesce_size):"
        " how long a new project may be missing from /simple/ while its own page is served.",
    ),
    Setting(
        "cooldown_tick",
        float,
        30.0,
        "Seconds between the checks that let files out of virtual indexes' cool-downs:"
        " how late after coming of age a file appears (docs/virtual.md).",
    ),
    Setting(
        "max_connections",
        int,
        1000,
        "Open connections `tilsit serve` keeps (per worker); one more gets 503 and is closed,"
        " so file descriptors stay for the tree and the database. Keep it well below the"
        " open-files limit (ulimit -n).",
    ),
    Setting(
        "header_timeout",
        float,
        30.0,
        "Seconds a client has to send a request's line and headers; then 408 and close.",
    ),
    Setting(
        "body_idle_timeout",
        float,
        60.0,
        "Seconds a request body may go without a byte arriving; then 408 and close.",
    ),
    Setting(
        "body_timeout",
        float,
        3600.0,
        "Seconds a whole request body (an upload) may take to arrive; then 408 and close.",
    ),
    Setting(
        "upload_temp_max",
        int,
        1024 * MiB,
        "Bytes the temp files of uploads in progress may hold together (per worker);"
        " an upload past it is refused (try again later), so slow clients cannot fill the disk.",
    ),
    # /_/metrics (issue 15): who may scrape it.
    Setting(
        "metrics_access",
        str,
        "loopback",
        "Who may read /_/metrics: `loopback` (peers 127.0.0.1 or ::1 only) or `token`"
        " (a bearer token equal to metrics_token).",
    ),
    Setting("metrics_token", str, "", "Bearer token for /_/metrics when metrics_access = token."),
    Setting(
        "host_name",
        str,
        "",
        "This host's name in /_/metrics (the journal lag is per host); empty means the"
        " machine's hostname.",
    ),
    Setting(
        "smtp_host",
        str,
        "",
        "SMTP server for account mail (address verification, password reset); empty writes"
        " each message to <data>/outbox/ instead, for a server with no mail set up.",
    ),
    Setting("smtp_port", int, 25, "SMTP port."),
    Setting(
        "smtp_security",
        str,
        "none",
        "SMTP transport security: none, starttls or tls (implicit).",
        ("none", "starttls", "tls"),
    ),
    Setting("smtp_username", str, "", "SMTP user name (empty: no SMTP login)."),
    Setting("smtp_password", str, "", "SMTP password."),
    Setting("mail_from", str, "tilsit@localhost", "From: address of account mail."),
    Setting("session_lifetime", int, 12 * 3600, "Seconds a web login lasts."),
    Setting(
        "secure_cookies",
        bool,
        True,
        "Mark session cookies Secure (browsers still send them to http://localhost and"
        " 127.0.0.1); turn off only to use the web UI over plain HTTP on another host.",
    ),
    Setting(
        "require_2fa",
        str,
        "off",
        "Who must have 2FA to upload: off, uploaders (everyone who can upload) or critical"
        " (maintainers of critical projects).",
        ("off", "uploaders", "critical"),
    ),
    Setting(
        "critical_percent",
        float,
        1.0,
        "Critical projects: the top N percent by downloads over the last 30 days"
        " (at least one project once any has downloads).",
    ),
    Setting(
        "critical_keep_days",
        int,
        30,
        "Days a project stays critical after it was last among the top critical_percent,"
        " so that others' downloads cannot push it out of the 2FA policy at once.",
    ),
    Setting("login_rate", str, "10/5m", "Failed logins allowed per user name (count/window)."),
    Setting(
        "login_ip_rate",
        str,
        "100/5m",
        "Failed logins allowed per client IP, whatever the user name; higher than login_rate"
        " so that one user's mistakes do not lock out others behind the same NAT.",
    ),
    Setting(
        "two_factor_rate",
        str,
        "5/5m,20/1h",
        "Failed second-factor attempts allowed per user (comma-separated count/window).",
    ),
    Setting(
        "project_create_rate",
        str,
        "20/1h",
        "New projects allowed per user (administrators and bulk tokens are exempt).",
    ),
    Setting(
        "require_verified_email_for_upload",
        str,
        "auto",
        "Refuse uploads by users without a confirmed email address: on, off, or auto (on"
        " when smtp_host is set, as without mail nobody could confirm one).",
        ("auto", "on", "off"),
    ),
    Setting(
        "publisher_add_rate",
        str,
        "100/1d",
        "Trusted publishers a user may add from the web pages, per user and per IP.",
    ),
    Setting(
        "pending_publishers_max",
        int,
        3,
        "Pending trusted publishers a user may have at once (each one reserves a project name).",
    ),
    Setting(
        "oidc_audience",
        str,
        "",
        "Audience that trusted-publishing tokens must name; empty means base_url when set,"
        " else 'tilsit'.",
    ),
    Setting(
        "trusted_token_lifetime",
        int,
        900,
        "Seconds an API token minted by trusted publishing lives.",
    ),
    Setting(
        "oidc_github_issuer",
        str,
        "https://token.actions.githubusercontent.com",
        "Issuer of GitHub Actions OIDC tokens (GitHub Enterprise Server has its own).",
    ),
    Setting(
        "oidc_ca_bundle",
        str,
        "",
        "PEM file of CA certificates to trust when fetching OIDC issuers' keys;"
        " empty means the system's (which honours SSL_CERT_FILE).",
    ),
    Setting(
        "tuf_bin_bits",
        int,
        10,
        "TUF: bits of sha256(target path) that pick its hashed bin (2^N bins per index),"
        " used when the keys are made; later `tilsit keys rebin` (or tuf_auto_rebin) changes"
        " the count.",
    ),
    Setting(
        "tuf_auto_rebin",
        bool,
        True,
        "TUF: when the targets key is online, re-cut the hashed bins (a new targets.json)"
        " once the largest index outgrows the bin count by a whole bit (about 8 * sqrt(targets)"
        " bins is best); off, or with the key offline, `tilsit keys rebin` does it.",
    ),
    Setting("tuf_timestamp_expiry", int, 86400, "TUF: seconds a timestamp.json stays valid."),
    Setting("tuf_snapshot_expiry", int, 86400, "TUF: seconds a snapshot stays valid."),
    Setting("tuf_bins_expiry", int, 86400, "TUF: seconds a hashed bin stays valid."),
    Setting(
        "tuf_targets_expiry",
        int,
        365 * 86400,
        "TUF: seconds targets.json stays valid (re-signed with the targets key).",
    ),
    Setting(
        "tuf_root_expiry",
        int,
        365 * 86400,
        "TUF: seconds a root version stays valid (re-signed with the root keys).",
    ),
    Setting(
        "tuf_grace",
        int,
        3600,
        "TUF: seconds a superseded snapshot, its bins and their hashed files stay on disk,"
        " for clients in the middle of a download (at least 3600).",
    ),
    Setting(
        "tuf_keep_versions",
        int,
        16,
        "TUF: superseded snapshots (with their bins and hashed files) kept, at most, even"
        " within tuf_grace; bounds disk at any upload rate (at least 1).",
    ),
    # Cache-Control by kind of document (docs/cdn.md, tilsit.config.cache_control); also
    # the keys of a [cache_control] table in the settings file.
    *(
        Setting(
            f"cache_control_{kind}",
            str,
            default,
            f"Cache-Control of {kind.replace('_', ' ')} documents"
            + (" (empty: max-age=<page_max_age>, public)." if not default else "."),
        )
        for kind, default in CACHE_CONTROL_KINDS.items()
    ),
    # CDN purge hook (docs/cdn.md): called after each render with the keys it changed.
    Setting(
        "purge_url",
        str,
        "",
        "CDN purge: URL called after each render with the changed surrogate keys"
        " (empty: no purge). With purge_style = url, the prefix each changed path is added to.",
    ),
    Setting("purge_method", str, "POST", "CDN purge: HTTP method (POST, PURGE…)."),
    Setting(
        "purge_style",
        str,
        "surrogate-key",
        "CDN purge: one request naming the keys in a Surrogate-Key header (surrogate-key,"
        " Fastly-style) or one request per changed URL (url, nginx proxy_cache_purge).",
        choices=("surrogate-key", "url"),
    ),
    Setting("purge_token", str, "", "CDN purge: sent as Fastly-Key and as a Bearer token."),
    Setting("purge_timeout", float, 5.0, "CDN purge: seconds a purge request may take."),
    Setting("tuf_root_keys", int, 1, "TUF: root keys `tilsit keys init` makes by default."),
    Setting(
        "tuf_root_threshold",
        int,
        1,
        "TUF: root keys that must sign a new root version, by default.",
    ),
    # Blob store (issue 15: the S3 store, store/s3.py; docs/storage.md).
    Setting(
        "blob_store",
        str,
        "fs",
        "Where blobs (distribution files, core metadata) are kept: fs (<data>/blobs) or s3"
        " (the bucket below; docs/storage.md).",
        choices=("fs", "s3"),
    ),
    Setting("s3_bucket", str, "", "S3: the bucket that holds the blobs (made beforehand)."),
    Setting("s3_prefix", str, "blobs", "S3: key prefix; a blob is <prefix>/<aa>/<bb>/<sha256>."),
    Setting(
        "s3_endpoint_url",
        str,
        "",
        "S3: endpoint URL of an S3-compatible server (https://s3.example.com); empty means AWS.",
    ),
    Setting("s3_region", str, "", "S3: region; empty means boto3's usual configuration."),
    Setting(
        "s3_access_key_id",
        str,
        "",
        "S3: access key id; empty means boto3's usual chain (AWS_ACCESS_KEY_ID, ~/.aws,"
        " an instance role).",
    ),
    Setting(
        "s3_secret_access_key",
        str,
        "",
        "S3: secret access key (with s3_access_key_id); prefer the environment to a file.",
    ),
    Setting(
        "s3_serve_files",
        str,
        "stream",
        "S3: how tilsit answers a file request: stream (the bytes through tilsit, with"
        " Range) or redirect (a 302 to a presigned URL of the bucket; docs/storage.md).",
        choices=("stream", "redirect"),
    ),
    Setting(
        "s3_url_expiry",
        int,
        300,
        "S3: seconds a presigned file URL stays valid (s3_serve_files = redirect).",
    ),
    # Several hosts on one PostgreSQL database (docs/scale-out.md).
    Setting(
        "blob_path",
        str,
        "",
        "Directory of the filesystem blob store; empty means <data>/blobs. Hosts sharing"
        " one database share it (a shared filesystem), on the same filesystem as <data>/tmp.",
    ),
    Setting(
        "journal_poll",
        float,
        2.0,
        "PostgreSQL: seconds between looks at the shared journal for other hosts' changes"
        " when no notification woke this host (a lost one); 0 stops following other hosts.",
    ),
    Setting(
        "tuf_shared",
        bool,
        True,
        "PostgreSQL: sign each index one host at a time and store the signed TUF metadata in"
        " the database, so every host serves the same bytes (on by default; no effect on"
        " SQLite, where one host owns the database; false turns it off).",
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
    allowed_hosts: str = ""
    max_upload_size: int = 100 * MiB
    upstream_page_max_size: int = 64 * MiB
    upstream_file_origins: str = ""
    page_max_age: int = 600
    page_cache_size: int = 64 * MiB
    index_page_coalesce_size: int = 256 * KiB
    index_page_interval: float = 1.0
    cooldown_tick: float = 30.0
    max_connections: int = 1000
    header_timeout: float = 30.0
    body_idle_timeout: float = 60.0
    body_timeout: float = 3600.0
    upload_temp_max: int = 1024 * MiB
    metrics_access: str = "loopback"  # /_/metrics (issue 15)
    metrics_token: str = ""
    host_name: str = ""
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_security: str = "none"
    smtp_username: str = ""
    smtp_password: str = ""
    mail_from: str = "tilsit@localhost"
    session_lifetime: int = 12 * 3600
    secure_cookies: bool = True
    require_2fa: str = "off"
    critical_percent: float = 1.0
    critical_keep_days: int = 30
    login_rate: str = "10/5m"
    login_ip_rate: str = "100/5m"
    two_factor_rate: str = "5/5m,20/1h"
    project_create_rate: str = "20/1h"
    require_verified_email_for_upload: str = "auto"
    publisher_add_rate: str = "100/1d"
    pending_publishers_max: int = 3
    oidc_audience: str = ""
    trusted_token_lifetime: int = 900
    oidc_github_issuer: str = "https://token.actions.githubusercontent.com"
    oidc_ca_bundle: str = ""
    tuf_bin_bits: int = 10
    tuf_auto_rebin: bool = True
    tuf_timestamp_expiry: int = 86400
    tuf_snapshot_expiry: int = 86400
    tuf_bins_expiry: int = 86400
    tuf_targets_expiry: int = 365 * 86400
    tuf_root_expiry: int = 365 * 86400
    tuf_grace: int = 3600
    tuf_keep_versions: int = 16
    # Cache-Control by kind and the CDN purge hook (docs/cdn.md).
    cache_control_simple: str = ""
    cache_control_json: str = ""
    cache_control_files: str = "max-age=31536000, immutable, public"
    cache_control_metadata: str = "max-age=31536000, immutable, public"
    cache_control_tuf_timestamp: str = "no-cache"
    cache_control_tuf_other: str = "max-age=31536000, immutable, public"
    purge_url: str = ""
    purge_method: str = "POST"
    purge_style: str = "surrogate-key"
    purge_token: str = ""
    purge_timeout: float = 5.0
    tuf_root_keys: int = 1
    tuf_root_threshold: int = 1
    # Blob store (issue 15).
    blob_store: str = "fs"
    s3_bucket: str = ""
    s3_prefix: str = "blobs"
    s3_endpoint_url: str = ""
    s3_region: str = ""
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    s3_serve_files: str = "stream"
    s3_url_expiry: int = 300
    # Several hosts on one PostgreSQL database (docs/scale-out.md).
    blob_path: str = ""
    journal_poll: float = 2.0
    tuf_shared: bool = True  # only PostgreSQL shares signing (instance.open_instance)
    sources: tuple[str, ...] = field(default=(), compare=False)

    @property
    def cache_control(self) -> CacheControl:
        return CacheControl.of(
            self.page_max_age,
            {kind: getattr(self, f"cache_control_{kind}") for kind in CACHE_CONTROL_KINDS},
        )

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data / 'tilsit.db'}"

    @property
    def blob_dir(self) -> Path:
        return Path(self.blob_path) if self.blob_path else self.data / "blobs"

    @property
    def tree_dir(self) -> Path:
        return self.data / "tree"

    @property
    def tmp_dir(self) -> Path:
        return self.data / "tmp"

    @property
    def outbox_dir(self) -> Path:
        return self.data / "outbox"

    @property
    def audience(self) -> str:
        """The audience trusted-publishing JWTs must carry (alone)."""
        return self.oidc_audience or self.base_url.rstrip("/") or "tilsit"


_TYPE_WORDS = {
    bool: "true or false",
    int: "int (a whole number)",
    float: "a number",
    str: "a string",
    Path: "a path",
}


def _coerce(setting: Setting, value: object, origin: str) -> object:
    try:
        if setting.type is bool:
            if isinstance(value, bool):
                return value
            word = str(value).strip().lower() if isinstance(value, str | int) else None
            if word in {"1", "true", "yes", "on"}:
                return True
            if word in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError("not a boolean")  # "maybe" must not quietly mean off
        if setting.type in (int, float) and isinstance(value, bool):
            raise TypeError("a boolean is not a number")
        if setting.type is int and isinstance(value, float) and not value.is_integer():
            raise ValueError("not a whole number")  # int() would cut it silently
        coerced = setting.type(value)
    except (TypeError, ValueError) as exc:
        raise InvalidSetting(
            f"{origin}: {setting.name} must be {_TYPE_WORDS[setting.type]}, got {value!r}"
        ) from exc
    if setting.name.endswith("_rate"):
        # Checked here, so a mistyped limit stops start-up instead of the first login.
        try:
            parse_limits(str(coerced))
        except InvalidLimit as exc:
            raise InvalidSetting(f"{origin}: {setting.name}: {exc}") from exc
    if setting.name == "upstream_file_origins":
        try:
            parse_origins(str(coerced))
        except ValueError as exc:
            raise InvalidSetting(f"{origin}: {setting.name}: {exc}") from exc
    if setting.name.startswith("cache_control_"):
        try:
            check_cache_control(str(coerced))
        except InvalidCacheControl as exc:
            raise InvalidSetting(f"{origin}: {setting.name}: {exc}") from exc
    if setting.choices and coerced not in setting.choices:
        raise InvalidSetting(
            f"{origin}: {setting.name} must be one of {', '.join(setting.choices)}, got {value!r}"
        )
    return coerced


def read_config_table(path: Path) -> dict[str, Any]:
    """The settings table of a TOML file (``[tilsit]`` or the top level), or InvalidSetting."""
    try:
        with path.open("rb") as fh:
            document = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends in "(at line L, column C)": the place to fix.
        raise InvalidSetting(f"{path}: not valid TOML: {exc}; fix the file") from None
    except UnicodeDecodeError as exc:
        raise InvalidSetting(f"{path}: not valid TOML: not UTF-8 text ({exc.reason})") from None
    except IsADirectoryError:
        raise InvalidSetting(f"{path}: is a directory; give a TOML settings file") from None
    except OSError as exc:
        raise InvalidSetting(
            f"settings file {path}: {exc.strerror}; check --config or TILSIT_CONFIG"
        ) from None
    table = document.get("tilsit", document)
    if not isinstance(table, dict):
        raise InvalidSetting(f"{path}: [tilsit] must be a table of settings")
    if table is not document and "cache_control" in document:
        # [cache_control] beside [tilsit] (docs/cdn.md), as well as [tilsit.cache_control].
        if "cache_control" in table:
            raise InvalidSetting(f"{path}: [cache_control] given twice; keep one")
        table = {**table, "cache_control": document["cache_control"]}
    return table


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
        table = dict(read_config_table(path))
        # [cache_control] simple = "…": the settings cache_control_<kind> (docs/cdn.md).
        cache_table = table.pop("cache_control", {})
        if not isinstance(cache_table, dict):
            raise InvalidSetting(f"{path}: [cache_control] must be a table")
        for kind, value in cache_table.items():
            table[f"cache_control_{kind}"] = value
        for key, value in table.items():
            name = key.replace("-", "_")
            if name not in by_name:
                raise InvalidSetting(
                    f"{path}: unknown setting {key!r}; `tilsit settings` lists them all"
                )
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
