"""nginx configuration that serves tilsit's static tree without tilsit on the read path.

:func:`render_nginx_config` gives what goes inside an ``http {}`` block (``perl_set``
variables, ``map``s and one ``server {}``); :func:`render_standalone`
wraps it into a complete ``nginx.conf`` whose pid, logs and temp files live in one
directory, for ``nginx -c FILE -p DIR`` in tests and benchmarks.

The config reproduces ``tilsit.web.read`` from the tree alone (see
``tilsit.store.tree`` for the layout): content negotiation with q-values and
``?format=``, 301s to the trailing slash and to the PEP 503 name, files with
``Range``/``HEAD``, the legacy JSON API, and the same ``ETag`` and
``X-PyPI-Last-Serial`` values as tilsit's own server. Uploads (``/legacy/``),
operations (``/_/``) and every other path go to tilsit at ``upstream``.

The fixed text lives in files next to this module, read as package data:
``TilsitNginx.pm`` (the Perl), ``maps.conf`` (the ``map`` blocks), ``server.conf``
(the ``server {}`` block) and ``nginx.conf`` (the standalone wrapper). The templates
take ``%{name}`` placeholders (:class:`string.Template` with ``%``, as ``$`` is
nginx's own); every value put in them is validated or quoted here first.

Why embedded Perl (``libnginx-mod-http-perl``) and not njs: nginx cannot lower-case
a string or compare q-values by itself, so some code must run in nginx. Debian 12
packages the Perl module but not njs (only the ``njs`` command-line tool), so Perl is
what ``apt-get install`` gives every Debian/Ubuntu server and CI. The Perl only
computes variables (``perl_set``); nginx's own static module still sends every byte,
so ``sendfile``, ``Range`` and ``HEAD`` are nginx's. The Perl runs inside the worker,
so it does no network I/O and reads only small page files, cached by ``stat``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from functools import cache
from importlib.resources import files
from pathlib import Path

from tilsit.config.cache_control import CacheControl
from tilsit.index.download_log import LOG_FORMAT
from tilsit.spec.simple import HTML_CSP

__all__ = [
    "PERL_MODULE",
    "PERL_SETS",
    "check_perl",
    "perl_parts",
    "render_nginx_config",
    "render_standalone",
]

# Where Debian and Ubuntu install the dynamic module (libnginx-mod-http-perl).
PERL_MODULE = Path("/usr/lib/nginx/modules/ngx_http_perl_module.so")

_MEDIA_TYPES = {
    "json": "application/vnd.pypi.simple.v1+json",
    "v1html": "application/vnd.pypi.simple.v1+html",
    "html": "text/html",
}
_NAME = r"[A-Za-z0-9._-]+"  # anything else can never be a project: 404 at once
_INDEX = r"[a-z0-9][a-z0-9._-]*"  # tilsit.index.manage._INDEX_NAME
_VERSION = r"[A-Za-z0-9._!+-]+"


class _Template(string.Template):
    """``%{name}`` placeholders: ``$`` is taken by nginx variables and Perl."""

    delimiter = "%"


@cache
def _text(name: str) -> str:
    """A file shipped next to this module (package data)."""
    return files("tilsit.nginx").joinpath(name).read_text(encoding="utf-8")


_PART = re.compile(r"^# perl_set part: (\w+)\n", re.MULTILINE)
_PARTS_END = "# end of the perl_set parts\n"


@cache
def perl_parts() -> Mapping[str, str]:
    """The parts of TilsitNginx.pm, by name, each as it goes into one ``perl_set``.

    A part runs from the line after its ``# perl_set part: NAME`` line to the next
    such line (or the end-of-parts line), newlines included.
    """
    source = _text("TilsitNginx.pm")
    body = source[: source.index(_PARTS_END)]
    pieces = _PART.split(body)
    return dict(zip(pieces[1::2], pieces[2::2], strict=True))


# variable -> (the part of TilsitNginx.pm that defines its helpers or "", the
# handler's body). The maps in maps.conf call these only when they must (the names
# end in _perl).
PERL_SETS = {
    "tilsit_media_perl": ("accept", "TilsitNginx::media_type($_[0])"),
    "tilsit_canonical_name_perl": (
        "names",
        'TilsitNginx::normalize_name($_[0]->variable("tilsit_name"))',
    ),
    "tilsit_canonical_legacy": (
        "",
        'TilsitNginx::canonical_legacy($_[0]->variable("tilsit_legacy"))',
    ),
    "tilsit_page": ("pages", "TilsitNginx::page($_[0])"),
    "tilsit_page_not_modified_perl": ("", "TilsitNginx::page_not_modified($_[0])"),
    "tilsit_file_not_modified_perl": ("", "TilsitNginx::file_not_modified($_[0])"),
}
_TOKEN_MAX = 4000  # nginx's NGX_CONF_BUFFER is 4096 bytes per parameter


def check_perl(source: str) -> str:
    for bad in ("\\\\", "\\'", '\\"', "\\n", "\\t", "\\r", "'"):
        if bad in source:
            raise ValueError(f"the Perl source contains {bad!r}, which nginx would rewrite")
    return source


def _quote(value: str) -> str:
    """An nginx string token in double quotes (variables in it are still expanded)."""
    if any(c in value for c in "\n\r\0"):
        raise ValueError(f"{value!r} cannot go into an nginx config")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _upstream_url(upstream: str) -> str:
    url = (upstream if "://" in upstream else f"http://{upstream}").rstrip("/")
    if not re.fullmatch(r"https?://[A-Za-z0-9.:\[\]_-]+", url):
        raise ValueError(f"upstream must be host:port or http(s)://host:port, not {upstream!r}")
    return url


def _perl_sets() -> str:
    lines = []
    for name, (part, call) in PERL_SETS.items():
        if part:
            # nginx evaluates a handler that starts with "use " as Perl code whose
            # last value is the handler: the helpers ride along with it.
            code = f"use strict;{check_perl(perl_parts()[part])}package main;\nsub {{ {call} }}"
        else:
            code = f"sub {{ {call} }}"
        if len(code) > _TOKEN_MAX:
            raise AssertionError(f"the Perl for ${name} is over nginx's 4 KB parameter limit")
        lines.append(f"perl_set ${name} '{code}';")
    return "\n".join(lines) + "\n"


_NOT_FOUND = 'return 404 "Not Found: $uri\\n";'


def _to_page(directory: str) -> str:
    """Hand a simple page directory to the location of the negotiated media type."""
    return (
        'if ($tilsit_media = "") { rewrite ^ /.tilsit/406 last; }\n'
        f"rewrite ^ /.tilsit/$tilsit_media/{directory}/$tilsit_page_file last;"
    )


def _simple(prefix: str, index: str, check: str) -> str:
    """The simple API below ``prefix`` (a path that may hold ``$tilsit_index``).

    ``prefix`` appears in regexes as written, so it must be a regex for itself;
    :func:`_path` turns the named group back into its variable for redirects.
    """
    path = _path(prefix)
    auth = f"set $tilsit_auth_index {index};\n"
    return f"""
location ~ "^{prefix}/$" {{
{check}{auth}{_to_page(f"{index}/simple")}
}}
location ~ "^{prefix}/(?<tilsit_name>{_NAME})$" {{
{check}return 301 {path}/$tilsit_canonical_name/$is_args$args;
}}
location ~ "^{prefix}/(?<tilsit_name>{_NAME})/$" {{
{check}if ($tilsit_name != $tilsit_canonical_name) {{
return 301 {path}/$tilsit_canonical_name/$is_args$args;
}}
{auth}{_to_page(f"{index}/simple/$tilsit_name")}
}}"""


def _legacy(prefix: str, index: str, check: str) -> str:
    """The legacy JSON API below ``prefix`` (``/pypi`` or ``/<index>/pypi``)."""
    path = _path(prefix)
    auth = f"set $tilsit_auth_index {index};\n"
    return f"""
location ~ "^{prefix}/(?<tilsit_legacy>{_NAME}(?:/{_VERSION})?)/json/?$" {{
{check}if ($tilsit_legacy != $tilsit_canonical_legacy) {{
return 301 {path}/$tilsit_canonical_legacy/json$is_args$args;
}}
{auth}rewrite ^ /.tilsit/legacy/{index}/pypi/$tilsit_legacy/json last;
}}"""


def _path(prefix_regex: str) -> str:
    return re.sub(r"\(\?<(\w+)>[^)]*\)", r"$\1", prefix_regex)


# A private index (its tree directory holds .private) is read only after tilsit has
# checked the request's token: auth_request asks /_/auth/<index>. Conditional requests
# are answered only after that check, and its pages are never cached as public.
_AUTH = """
set $tilsit_private "";
if (-f "$document_root/$tilsit_auth_index/.private") { set $tilsit_private 1; }
auth_request /.tilsit/auth;
error_page 401 /.tilsit/401;
error_page 403 /.tilsit/403;
"""


# CDN keys (tilsit.spec.surrogate, docs/cdn.md): the same keys tilsit sends, taken from
# the request URI (the original one: pages are served from internal locations), on
# every location that answers from the tree. Locations that proxy to tilsit get
# tilsit's own. A project name not in PEP 503 form (a redirect) names only its index.
_PROJECT = r"[a-z0-9]+(?:-[a-z0-9]+)*"


def _surrogate_maps(default_index: str) -> str:
    end = r"(?:[?]|$)"
    rules = [
        (rf"^/simple/{end}", [f"index:{default_index}", f"list:{default_index}"]),
        (
            rf"^/(?:simple|pypi|project)/({_PROJECT})(?:[/?]|$)",
            [f"index:{default_index}", f"project:{default_index}/$1"],
        ),
        (r"^/packages/", ["index:packages"]),
        (r"^/(?:_|osv|account|admin|legacy)(?:[/?]|$)", []),
        (rf"^/({_INDEX})/simple/{end}", ["index:$1", "list:$1"]),
        (
            rf"^/({_INDEX})/(?:simple|pypi|project)/({_PROJECT})(?:[/?]|$)",
            ["index:$1", "project:$1/$2"],
        ),
        (rf"^/({_INDEX})/tuf/", ["index:$1", "tuf:$1"]),
        (rf"^/({_INDEX})/", ["index:$1"]),
    ]
    maps = []
    for variable, separator in (("tilsit_surrogate_key", " "), ("tilsit_cache_tag", ",")):
        lines = [f'"~{regex}" "{separator.join(keys)}";' for regex, keys in rules]
        maps.append(
            f"map $request_uri ${variable} {{\n"
            + "".join(f"{line}\n" for line in lines)
            + 'default "";\n}\n'
        )
    return "# CDN keys (docs/cdn.md): the keys tilsit sends, from the request URI.\n" + "".join(
        maps
    )


def _with_surrogate_keys(server: str) -> str:
    """Every location that sets Cache-Control (it answers from the tree) names its keys."""
    out = []
    for line in server.splitlines(keepends=True):
        out.append(line)
        if line.strip().startswith("add_header Cache-Control"):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}add_header Surrogate-Key $tilsit_surrogate_key;\n")
            out.append(f"{indent}add_header Cache-Tag $tilsit_cache_tag;\n")
    return "".join(out)


def _page_location(media: str, tree: str, content_type: str, page_cache: str) -> str:
    simple = media != "legacy"
    extra = 'add_header Vary "Accept";' if simple else 'add_header Access-Control-Allow-Origin "*";'
    if media in ("html", "v1html"):
        extra += (
            f'\nadd_header Content-Security-Policy "{HTML_CSP}";'
            '\nadd_header X-Content-Type-Options "nosniff";'
        )
    return f"""
location ^~ /.tilsit/{media}/ {{
internal;
alias {_quote(tree + "/")};
default_type {content_type};
etag off;
if_modified_since off;
max_ranges 0;
error_page 404 {"/.tilsit/404-page" if simple else "/.tilsit/404"};{_AUTH}
if ($tilsit_page_304) {{ return 304; }}
add_header Last-Modified "";
add_header ETag $tilsit_page_etag;
add_header X-PyPI-Last-Serial $tilsit_page_serial;
add_header Cache-Control "{page_cache.replace("public", "$tilsit_visibility")}";
{extra}
}}"""


def _tuf(tree: str, cache: CacheControl) -> str:
    """TUF metadata at ``/<index>/tuf/`` and the ``<sha256>.<page>`` names TUF clients
    fetch (see tilsit.trust.layout), gated like the rest of the index."""
    named = f"/(?<tilsit_tuf_index>{_INDEX})"
    immutable = cache.tuf_other.replace("public", "$tilsit_visibility")
    latest = cache.tuf_timestamp.replace("public", "$tilsit_visibility")
    gate = f"set $tilsit_auth_index $tilsit_tuf_index;{_AUTH}"
    hashed = f"{named}/simple/(?:{_NAME}/)?[0-9a-f]{{64}}[.]index"
    html = (
        f'add_header Content-Security-Policy "{HTML_CSP}";\n'
        'add_header X-Content-Type-Options "nosniff";'
    )
    return f"""
location ~ "^{named}/tuf/(?:timestamp|root)[.]json$" {{
{gate}default_type application/json;
add_header Cache-Control "{latest}";
}}
location ~ "^{named}/tuf/[0-9]+[.][a-z0-9-]+[.]json$" {{
{gate}default_type application/json;
add_header Cache-Control "{immutable}";
gzip_static on;
gzip_vary on;
}}
location ~ "^{named}/tuf/" {{
{_NOT_FOUND}
}}
location ~ "^{hashed}[.]html$" {{
{gate}default_type text/html;
add_header Cache-Control "{immutable}";
{html}
}}
location ~ "^{hashed}[.]v1[.]json$" {{
{gate}default_type application/vnd.pypi.simple.v1+json;
add_header Cache-Control "{immutable}";
}}"""


def _downloads_log(path: Path | None) -> str:
    """The ``access_log`` line of the file locations: one line per request for a file, in
    the format ``tilsit downloads import-log`` reads (tilsit.index.download_log)."""
    if path is None:
        return ""
    return f"\naccess_log {_quote(str(path))} tilsit_downloads;"


def _log_format(path: Path | None) -> str:
    """The downloads log's ``log_format`` (http level), if there is a downloads log.

    Tab-separated: nginx escapes tabs, quotes and other control bytes inside a value
    (``\\xHH``), so each tab separates two fields."""
    if path is None:
        return ""
    return (
        "# Downloads of files, for `tilsit downloads import-log` (see docs/browsing.md).\n"
        f"log_format tilsit_downloads '{LOG_FORMAT}';\n"
    )


def _shared_file(fetch: str, downloads_log: str, files_cache: str, proxy: str | None) -> str:
    """The body of the ``/packages/`` file location: the tree's file, or, when the blobs
    are in an object store (the tree holds pointers: tilsit.store.blobfile), tilsit,
    which streams or redirects and counts the download itself."""
    if proxy is not None:
        return "\n# The blob is in the object store: tilsit answers.\n" + proxy
    return f"""{fetch}{downloads_log}
default_type application/octet-stream;
set $tilsit_file_etag '"$1$2$3"';
etag off;
max_ranges 1;
if ($tilsit_file_not_modified) {{ return 304; }}
add_header ETag $tilsit_file_etag;
add_header Cache-Control "{files_cache}";"""


def _private_files(
    tree: str, cache: CacheControl, downloads_log: str = "", proxy: str | None = None
) -> str:
    """An index's own files, under ``/<index>/packages/`` (see tilsit.store.tree): a private
    index's, and a virtual index's whether private or public (so shared caches may keep a
    public one's)."""
    named = f"/(?<tilsit_files_index>{_INDEX})/packages"
    metadata = cache.metadata.replace("public", "$tilsit_visibility")
    files = cache.files.replace("public", "$tilsit_visibility")
    # tilsit checks the index's access itself (web/gate.py), as for every path it answers.
    file_body = (
        "\n# The blob is in the object store: tilsit answers.\n" + proxy
        if proxy is not None
        else f"""{downloads_log}
set $tilsit_file_etag '"$2$3$4"';
set $tilsit_auth_index $tilsit_files_index;{_AUTH}
default_type application/octet-stream;
etag off;
max_ranges 1;
if ($tilsit_file_304) {{ return 304; }}
add_header ETag $tilsit_file_etag;
add_header Cache-Control "{files}";"""
    )
    return f"""
location ~ "^{named}/[^/]+/[^/]+/[^/]+/[^/.][^/]*[.]metadata$" {{
set $tilsit_auth_index $tilsit_files_index;{_AUTH}
default_type application/octet-stream;
etag off;
if_modified_since off;
max_ranges 0;
if ($tilsit_page_304) {{ return 304; }}
add_header Last-Modified "";
add_header ETag $tilsit_page_etag;
add_header Cache-Control "{metadata}";
}}
location ~ "^{named}/([^/]+)/([^/]+)/([^/]+)/[^/.][^/]*$" {{{file_body}
}}"""


def _virtual_reason(proxy: str | None) -> tuple[str, str]:
    """A virtual index's missing page (its tree directory holds ``.virtual``, which the
    renderer writes) is answered by tilsit, whose 404 says why: reserved, a look-alike,
    hidden by a policy until a date. Its pages stay static; only the 404 asks tilsit.
    Returns the test for the 404 location and the location it hands over to."""
    if proxy is None:
        return "", ""
    test = """
if (-f "$document_root/$tilsit_auth_index/.virtual") {
rewrite ^ /.tilsit/virtual-404 last;
}"""
    location = f"""
location = /.tilsit/virtual-404 {{
internal;
# The path as the client asked for it (a project name holds nothing to escape).
rewrite ^ $request_uri? break;
{proxy}
}}"""
    return test, location


def _auth_locations(proxy: str | None) -> str:
    """The ``auth_request`` target: public indexes at once, private ones asked of tilsit."""
    ask = (
        f"""rewrite ^ /_/auth/$tilsit_auth_index break;
{proxy}
proxy_pass_request_body off;
proxy_set_header Content-Length "";
# The decision is per project (a role opens one project's pages and files): tilsit reads
# the path from the request as the client sent it, and resolves it as nginx does.
proxy_set_header X-Original-URI $request_uri;"""
        if proxy is not None
        else "return 403;"
    )
    return f"""
location = /.tilsit/auth {{
internal;
# Every route that reaches the tree names its index; a route that did not would be refused.
if ($tilsit_auth_index = "") {{ return 403; }}
if (!-f "$document_root/$tilsit_auth_index/.private") {{ return 204; }}
{ask}
}}
location = /.tilsit/401 {{
internal;
# auth_request passes on tilsit's WWW-Authenticate challenge.
add_header Cache-Control "no-store" always;
return 401 "Unauthorized: index $tilsit_auth_index is private. Send an API token as the password of HTTP Basic authentication (user name __token__) or as a Bearer token. Account passwords are not accepted here, as they would bypass two-factor authentication.\n";
}}
location = /.tilsit/403 {{
internal;
add_header Cache-Control "no-store" always;
return 403 "Forbidden: this API token may not read index $tilsit_auth_index\n";
}}"""


def _reindent(text: str) -> str:
    """Indent by brace depth, so the generated file reads like a hand-written one."""
    out: list[str] = []
    depth = 0
    for raw in text.strip("\n").split("\n"):
        line = raw.strip()
        if line.startswith("}"):
            depth -= 1
        out.append("    " * depth + line if line else "")
        if line.endswith("{"):
            depth += 1
    if depth != 0:
        raise AssertionError("unbalanced braces in the generated nginx config")
    return "\n".join(out) + "\n"


def render_nginx_config(
    tree_dir: Path,
    listen: str,
    default_index: str,
    upstream: str | None,
    *,
    page_max_age: int = 600,
    max_upload_size: int = 100 * 1024 * 1024,
    proxy_indexes: Sequence[str] = (),
    downloads_log: Path | None = None,
    cache_control: CacheControl | None = None,
    files_from_tilsit: bool = False,
) -> str:
    """The ``perl_set`` and ``map`` lines and the ``server {}`` block, for an ``http {}`` include.

    ``downloads_log`` is where nginx logs each request for a distribution file, for
    ``tilsit downloads import-log`` (None: no such log; nginx's own access log then has
    them, in a format the import does not read).

    ``upstream`` is tilsit's own server (``127.0.0.1:8080`` or a URL): uploads,
    ``/_/`` and every path outside the tree go there. Without it those paths answer
    404 (uploads 405): a read-only copy of the tree.

    ``proxy_indexes`` are served by tilsit itself, not from the tree: their pages
    must be revalidated after their TTL and their files fetched on first request,
    which only tilsit can do. ``/packages/`` misses then go to tilsit too.

    ``files_from_tilsit``: the blobs are in an object store and the tree holds
    pointers (tilsit.store.blobfile), so every distribution file goes to tilsit;
    pages and core metadata are still served from the tree.
    """
    if files_from_tilsit and upstream is None:
        raise ValueError(
            "files in an object store (blob_store = s3) are answered by tilsit: drop --no-upstream"
        )
    for name in proxy_indexes:
        if not re.fullmatch(_INDEX, name):
            raise ValueError(f"{name!r} is not a valid index name")
    if proxy_indexes and upstream is None:
        raise ValueError("proxy indexes need tilsit upstream of nginx (drop --no-upstream)")
    tree = str(tree_dir.resolve())
    if not re.fullmatch(_INDEX, default_index):
        raise ValueError(f"{default_index!r} is not a valid index name")
    if not re.fullmatch(r"[A-Za-z0-9.:\[\]_ -]+", listen):
        raise ValueError(f"{listen!r} is not an nginx listen address")
    # Cache-Control by kind (docs/cdn.md): the values tilsit sends.
    cache = cache_control or CacheControl.of(page_max_age)
    page_cache = cache.simple

    if upstream is not None:
        proxy = f"""proxy_pass {_upstream_url(upstream)};
proxy_http_version 1.1;
proxy_set_header Connection "";
proxy_set_header Host $http_host;
proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
proxy_set_header X-Forwarded-Proto $scheme;"""
        outside = f"""
# Everything that is not the tree goes to tilsit: uploads, operations, the web UI.
location ^~ /_/ {{
{proxy}
}}
location ~ "^/(?:{_INDEX}/)?legacy(?:/|$)" {{
{proxy}
}}
# XML-RPC (POST /pypi, /<index>/pypi): only tilsit answers it. "= /pypi" as well, or
# nginx would answer /pypi with a 301 to the proxied "= /pypi/".
location ~ "^/(?:{_INDEX}/)?pypi/?$" {{
{proxy}
}}
location = /pypi/ {{
{proxy}
}}
location = /pypi {{
{proxy}
}}
location / {{
{proxy}
}}
location @tilsit_fetch {{
{proxy}
}}"""
        # Proxy indexes: tilsit answers for them (prefix locations beat the regexes below).
        for name in proxy_indexes:
            prefixes = ["/simple/", "/pypi/"] if name == default_index else []
            for prefix in [f"/{name}/", *prefixes]:
                outside += f"""
location ^~ {prefix} {{
{proxy}
}}"""
    else:
        outside = f"""
# No upstream: a read-only copy of the tree.
location ~ "^/(?:{_INDEX}/)?legacy(?:/|$)" {{
add_header Allow "GET, HEAD" always;
return 405 "Method Not Allowed: uploads go to the origin server\\n";
}}
location / {{
{_NOT_FOUND}
}}"""

    default_static = (
        ""
        if default_index in proxy_indexes
        else f"""
location ^~ /simple/ {{{_simple("/simple", default_index, "")}
{_NOT_FOUND}
}}
location ^~ /pypi/ {{{_legacy("/pypi", default_index, "")}
{_NOT_FOUND}
}}"""
    )
    # A proxy's file not fetched yet is not in the tree: tilsit fetches it.
    fetch = "\ntry_files $uri @tilsit_fetch;" if proxy_indexes else ""
    named = f"/(?<tilsit_index>{_INDEX})"
    check = (
        'if (!-d "$document_root/$tilsit_index") {\n'
        'return 404 "Not Found: there is no index named $tilsit_index\\n";\n'
        "}\n"
    )
    pages = "".join(
        _page_location(media, tree, content_type, cache.json if media == "legacy" else page_cache)
        for media, content_type in [*_MEDIA_TYPES.items(), ("legacy", "application/json")]
    )
    reason_test, reason_location = _virtual_reason(proxy if upstream is not None else None)
    server = _Template(_text("server.conf")).substitute(
        listen=listen,
        root=_quote(tree),
        client_max_body_size=max_upload_size + 1024 * 1024,
        outside=outside,
        fetch=fetch,
        virtual_reason=reason_test,
        virtual_reason_location=reason_location,
        files_cache=cache.files,
        metadata_cache=cache.metadata,
        index=_INDEX,
        auth=_AUTH,
        default_index=default_index,
        default_static=default_static,
        private_files=_private_files(
            tree, cache, _downloads_log(downloads_log), proxy if files_from_tilsit else None
        ),
        shared_file=_shared_file(
            fetch,
            _downloads_log(downloads_log),
            cache.files,
            proxy if files_from_tilsit else None,
        ),
        auth_locations=_auth_locations(proxy if upstream is not None else None),
        tuf=_tuf(tree, cache),
        named=named,
        check=check,
        simple=_simple(named + "/simple", "$tilsit_index", check),
        legacy=_legacy(named + "/pypi", "$tilsit_index", check),
        not_found=_NOT_FOUND,
        pages=pages,
        page_cache=page_cache,
        media_types=", ".join(_MEDIA_TYPES.values()),
    )
    header = (
        "# tilsit's static tree served by nginx: generated by tilsit.nginx, see\n"
        "# nginx/README.md. Goes inside http {}; needs libnginx-mod-http-perl.\n"
    )
    return (
        header
        + _perl_sets()
        + _reindent(
            _log_format(downloads_log)
            + _text("maps.conf")
            + "\n"
            + _surrogate_maps(default_index)  # CDN keys (docs/cdn.md)
            + "\n"
            + _with_surrogate_keys(server)
        )
    )


def render_standalone(
    tree_dir: Path,
    listen: str,
    default_index: str,
    upstream: str | None,
    *,
    run_dir: Path,
    user: str | None = None,
    workers: int | str = 1,
    perl_module: Path = PERL_MODULE,
    access_log: bool = False,
    page_max_age: int = 600,
    max_upload_size: int = 100 * 1024 * 1024,
    proxy_indexes: Sequence[str] = (),
    downloads_log: Path | None = None,
    cache_control: CacheControl | None = None,
    files_from_tilsit: bool = False,
) -> str:
    """A whole ``nginx.conf`` for ``nginx -c FILE -p RUN_DIR -e RUN_DIR/error.log``.

    The pid file, logs and temp files go under ``run_dir``, and nginx stays in the
    foreground (``daemon off``) so that the caller owns the process. ``user`` matters
    only when nginx starts as root: the workers become that user and must be able to
    read the tree.
    """
    if user is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9._-]*", user):
        raise ValueError(f"{user!r} is not a user name nginx's workers can run as")
    run = run_dir.resolve()
    temp = "".join(
        f"{kind}_temp_path {_quote(str(run / kind))};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    body = render_nginx_config(
        tree_dir,
        listen,
        default_index,
        upstream,
        page_max_age=page_max_age,
        cache_control=cache_control,
        max_upload_size=max_upload_size,
        proxy_indexes=proxy_indexes,
        downloads_log=downloads_log,
        files_from_tilsit=files_from_tilsit,
    )
    # The include body goes in verbatim: its Perl strings must keep their own layout.
    return _Template(_text("nginx.conf")).substitute(
        perl_module=_quote(str(perl_module)),
        user=f"user {user};\n" if user else "",
        workers=workers,
        pid=_quote(str(run / "nginx.pid")),
        error_log=_quote(str(run / "error.log")),
        temp_paths=temp,
        access_log=f"access_log {_quote(str(run / 'access.log'))};"
        if access_log
        else "access_log off;",
        http=body,
    )
