"""nginx configuration that serves tilsit's static tree without tilsit on the read path.

:func:`render_nginx_config` gives what goes inside an ``http {}`` block (``perl_set``
variables, ``map``s and one ``server {}``); :func:`render_standalone`
wraps it into a complete ``nginx.conf`` whose pid, logs and temp files live in one
directory, for ``nginx -c FILE -p DIR`` in tests and benchmarks.

The config reproduces ``tilsit.web.read`` from the tree alone (see
``tilsit.render.tree`` for the layout): content negotiation with q-values and
``?format=``, 301s to the trailing slash and to the PEP 503 name, files with
``Range``/``HEAD``, the legacy JSON API, and the same ``ETag`` and
``X-PyPI-Last-Serial`` values as tilsit's own server. Uploads (``/legacy/``),
operations (``/_/``) and every other path go to tilsit at ``upstream``.

Why embedded Perl (``libnginx-mod-http-perl``) and not njs: nginx cannot lower-case
a string or compare q-values by itself, so some code must run in nginx. Debian 12
packages the Perl module but not njs (only the ``njs`` command-line tool), so Perl is
what ``apt-get install`` gives every Debian/Ubuntu server and CI. The Perl below only
computes variables (``perl_set``); nginx's own static module still sends every byte,
so ``sendfile``, ``Range`` and ``HEAD`` are nginx's. The Perl runs inside the worker,
so it does no network I/O and reads only small page files, cached by ``stat``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from tilsit.web.read import HTML_CSP

__all__ = ["PERL_MODULE", "render_nginx_config", "render_standalone"]

# Where Debian and Ubuntu install the dynamic module (libnginx-mod-http-perl).
PERL_MODULE = Path("/usr/lib/nginx/modules/ngx_http_perl_module.so")

_MEDIA_TYPES = {
    "json": "application/vnd.pypi.simple.v1+json",
    "v1html": "application/vnd.pypi.simple.v1+html",
    "html": "text/html",
}
_IMMUTABLE = "max-age=31536000, immutable, public"
_NAME = r"[A-Za-z0-9._-]+"  # anything else can never be a project: 404 at once
_INDEX = r"[a-z0-9][a-z0-9._-]*"  # tilsit.index.manage._INDEX_NAME
_VERSION = r"[A-Za-z0-9._!+-]+"

# The Perl helpers, mirroring tilsit.spec.accept, tilsit.spec.names, packaging's
# Version normalisation and tilsit.web.treefiles, in package TilsitNginx. Each
# chunk goes verbatim into one single-quoted perl_set handler, which nginx caps at
# 4 KB and in which it rewrites \\ \' \" \n \t \r: so a chunk stays small and has
# none of those sequences and no single quote (see _check_perl).
_PERL_ACCEPT = r"""
package TilsitNginx;
# Simple API media types, in the order the server prefers them.
our @TYPES = (
    ["json", "application/vnd.pypi.simple.v1+json"],
    ["v1html", "application/vnd.pypi.simple.v1+html"],
    ["html", "text/html"],
);
our %FORMATS = (
    "json" => "json", "html" => "html",
    "application/vnd.pypi.simple.v1+json" => "json",
    "application/vnd.pypi.simple.v1+html" => "v1html",
    "text/html" => "html",
);

sub trim { my ($s) = @_; $s =~ s/^\s+|\s+$//g; return $s; }

# Accept -> [[range, q], ...]; a q that is not a number counts as 0.
sub parse_accept {
    my ($header) = @_;
    my @ranges;
    for my $item (split /,/, $header) {
        my @parts = map { trim($_) } split /;/, $item, -1;
        my $media = lc($parts[0] // "");
        next if $media eq "";
        my $quality = 1;
        for my $param (@parts[1 .. $#parts]) {
            my ($key, $value) = split /=/, $param, 2;
            next if !defined $key || lc(trim($key)) ne "q";
            $value = trim($value // "");
            $quality = $value =~ /^[+-]?(?:[0-9]+[.]?[0-9]*|[.][0-9]+)(?:[eE][+-]?[0-9]+)?$/
                ? $value + 0 : 0;
            $quality = $quality < 0 ? 0 : $quality > 1 ? 1 : $quality;
        }
        push @ranges, [$media, $quality];
    }
    return \@ranges;
}

# (q, specificity) of the most specific range matching a type, or ().
sub quality {
    my ($type, $ranges) = @_;
    my ($major) = $type =~ m{^([^/]*)};
    my ($specificity, $found) = (-1, undef);
    for my $range (@$ranges) {
        my ($media, $q) = @$range;
        my $s = $media eq $type ? 2 : $media eq "$major/*" ? 1 : $media eq "*/*" ? 0 : -1;
        ($specificity, $found) = ($s, $q) if $s > $specificity;
    }
    return defined $found ? ($found, $specificity) : ();
}

# Short name of the type to answer with; "" when none is acceptable (406).
# Highest q, then a type named outright over a wildcard, then the server order,
# reversed for a bare */* (plain HTML, which every client reads).
sub negotiate {
    my ($accept) = @_;
    return "html" if !defined $accept || $accept !~ /\S/;
    my $ranges = parse_accept($accept);
    my ($chosen, @best);
    for my $preference (0 .. $#TYPES) {
        my ($q, $s) = quality($TYPES[$preference][1], $ranges);
        next if !defined $q || $q <= 0;
        my @key = ($q, $s, $s ? -$preference : $preference);
        if (!@best || ($key[0] <=> $best[0] || $key[1] <=> $best[1] || $key[2] <=> $best[2]) > 0) {
            ($chosen, @best) = ($TYPES[$preference][0], @key);
        }
    }
    return $chosen // "";
}

sub unquote_plus {
    my ($s) = @_;
    $s =~ tr/+/ /;
    $s =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge;
    return $s;
}

# The first non-blank format= value, decoded as parse_qs decodes it.
sub query_format {
    my ($args) = @_;
    for my $field (split /&/, $args // "") {
        my ($name, $value) = split /=/, $field, 2;
        next if !defined $value || $value eq "";
        return unquote_plus($value) if unquote_plus($name) eq "format";
    }
    return undef;
}

# Clients send the same few Accept headers over and over: remember the answers.
our %NEGOTIATED;

sub media_type {
    my ($r) = @_;
    my $wanted = query_format($r->args);
    # An unencoded "+" in a media type decodes to a space; that is what was meant.
    $wanted =~ tr/ /+/ if defined $wanted;
    return $FORMATS{$wanted} // "" if defined $wanted;
    my $accept = $r->header_in("Accept") // "";
    %NEGOTIATED = () if keys %NEGOTIATED > 1000;
    return $NEGOTIATED{$accept} //= negotiate($accept);
}
"""

_PERL_NAMES = r"""
package TilsitNginx;
# PEP 503; ASCII only, as only ASCII names are valid project names.
sub normalize_name {
    my ($name) = @_;
    $name = lc($name // "");
    $name =~ s/[-_.]+/-/g;
    return $name;
}

# PEP 440 as str(packaging.version.Version(v)) writes it; undef if invalid.
our $VERSION_RE = qr{
    ^ \s* v?
    (?: ([0-9]+) ! )?
    ( [0-9]+ (?: [.][0-9]+ )* )
    (?: [-_.]? (alpha|a|beta|b|preview|pre|c|rc) [-_.]? ([0-9]+)? )?
    (?: - ([0-9]+) | [-_.]? (post|rev|r) [-_.]? ([0-9]+)? )?
    (?: [-_.]? (dev) [-_.]? ([0-9]+)? )?
    (?: [+] ([a-z0-9]+ (?: [-_.][a-z0-9]+ )*) )?
    \s* $
}xi;
our %PRE = (alpha => "a", a => "a", beta => "b", b => "b",
            c => "rc", pre => "rc", preview => "rc", rc => "rc");

sub number { my ($n) = @_; $n =~ s/^0+(?=[0-9])//; return $n; }

sub canonical_version {
    my ($v) = @_;
    my ($epoch, $release, $pre_l, $pre_n, $post_n1, $post_l, $post_n2, $dev_l, $dev_n, $local)
        = $v =~ $VERSION_RE or return undef;
    my $out = "";
    $out .= number($epoch) . "!" if defined $epoch && number($epoch) ne "0";
    $out .= join ".", map { number($_) } split /[.]/, $release;
    $out .= $PRE{lc $pre_l} . number($pre_n // 0) if defined $pre_l;
    if (defined $post_n1) {
        $out .= ".post" . number($post_n1);
    } elsif (defined $post_l) {
        $out .= ".post" . number($post_n2 // 0);
    }
    $out .= ".dev" . number($dev_n // 0) if defined $dev_l;
    $out .= "+" . join ".", map { /^[0-9]+$/ ? number($_) : lc $_ } split /[-_.]/, $local
        if defined $local;
    return $out;
}

# "<name>" or "<name>/<version>" of a legacy JSON URL, as the tree names it.
sub canonical_legacy {
    my ($path) = @_;
    my ($name, $version) = split m{/}, $path // "", 2;
    my $out = normalize_name($name);
    $out .= "/" . (canonical_version($version) // $version) if defined $version;
    return $out;
}
"""

_PERL_PAGES = r"""
package TilsitNginx;
use Digest::SHA ();
use Fcntl ();
use Time::HiRes ();
# (ETag, serial) of a page, as tilsit computes them: a sha256 of the bytes, and
# the serial the page states. Pages are replaced by rename, so a new stat means
# new bytes; each worker caches by stat.
our %PAGES;

sub page_info {
    my ($path) = @_;
    my @st = Time::HiRes::stat($path);
    return ("", "") if !@st || !Fcntl::S_ISREG($st[2]);
    my $cached = $PAGES{$path};
    return @$cached[1, 2] if $cached && $cached->[0] eq join(":", @st[0, 1, 7, 9, 10]);
    open(my $fh, "<:raw", $path) or return ("", "");
    @st = Time::HiRes::stat($fh);
    my $data = do { local $/; <$fh> } // "";
    close $fh;
    my $etag = chr(34) . substr(Digest::SHA::sha256_hex($data), 0, 40) . chr(34);
    my $tail = length($data) > 64 ? substr($data, -64) : $data;
    my ($serial) = $tail =~ /<!--SERIAL ([0-9]+)-->\s*$/;
    ($serial) = substr($data, 0, 200) =~ /"_last-serial":([0-9]+)/ if !defined $serial;
    ($serial) = $data =~ /"last_serial": ([0-9]+)/ if !defined $serial;
    %PAGES = () if keys %PAGES > 100000;
    $PAGES{$path} = [join(":", @st[0, 1, 7, 9, 10]), $etag, $serial // ""];
    return ($etag, $serial // "");
}

# If-None-Match as tilsit reads it: "*", or a list of tags with W/ ignored.
sub etag_matches {
    my ($header, $etag) = @_;
    return 0 if ($header // "") eq "" || ($etag // "") eq "";
    return 1 if trim($header) eq "*";
    for my $candidate (split /,/, $header) {
        $candidate = trim($candidate);
        $candidate =~ s{^W/}{};
        return 1 if $candidate eq $etag;
    }
    return 0;
}

# "ETAG SERIAL" of the page the request maps to; maps split it in two.
sub page { return join(" ", page_info($_[0]->filename)); }

sub page_not_modified {
    my ($r) = @_;
    return etag_matches($r->header_in("If-None-Match"), $r->variable("tilsit_page_etag"))
        ? "1" : "";
}

sub file_not_modified {
    my ($r) = @_;
    return "" if !-f $r->filename;
    return etag_matches($r->header_in("If-None-Match"), $r->variable("tilsit_file_etag"))
        ? "1" : "";
}
"""

# variable -> (Perl that defines helpers or "", the handler's body). The maps in
# _MAPS call these only when they must (the names end in _perl).
_PERL_SETS = {
    "tilsit_media_perl": (_PERL_ACCEPT, "TilsitNginx::media_type($_[0])"),
    "tilsit_canonical_name_perl": (
        _PERL_NAMES,
        'TilsitNginx::normalize_name($_[0]->variable("tilsit_name"))',
    ),
    "tilsit_canonical_legacy": (
        "",
        'TilsitNginx::canonical_legacy($_[0]->variable("tilsit_legacy"))',
    ),
    "tilsit_page": (_PERL_PAGES, "TilsitNginx::page($_[0])"),
    "tilsit_page_not_modified_perl": ("", "TilsitNginx::page_not_modified($_[0])"),
    "tilsit_file_not_modified_perl": ("", "TilsitNginx::file_not_modified($_[0])"),
}

# Fast paths in plain nginx, and the split of $tilsit_page; a map is evaluated
# only when its variable is used, and a variable value only when it is chosen.
_MAPS = r"""
# The media type of a simple page: without a query string and with no Accept
# header, HTML at once; otherwise Perl (which remembers each Accept it has seen).
map $args $tilsit_media {
"" $tilsit_media_accept;
default $tilsit_media_perl;
}
map $http_accept $tilsit_media_accept {
"" html;
default $tilsit_media_perl;
}
# Which file of a simple page directory holds that media type.
map $tilsit_media $tilsit_page_file {
json index.v1.json;
default index.html;
}
# A name already in PEP 503 form needs no Perl to say so.
map $tilsit_name $tilsit_canonical_name {
"~^[a-z0-9]+(?:-[a-z0-9]+)*$" $tilsit_name;
default $tilsit_canonical_name_perl;
}
# $tilsit_page is "ETAG SERIAL" (either may be empty).
map $tilsit_page $tilsit_page_etag {
"~^(?<tilsit_page_etag_part>[^ ]+)" $tilsit_page_etag_part;
default "";
}
map $tilsit_page $tilsit_page_serial {
"~ (?<tilsit_page_serial_part>[0-9]+)$" $tilsit_page_serial_part;
default "";
}
# Conditional requests: Perl compares tags only when the client sent some.
map $http_if_none_match $tilsit_page_not_modified {
"" "";
default $tilsit_page_not_modified_perl;
}
map $http_if_none_match $tilsit_file_not_modified {
"" "";
default $tilsit_file_not_modified_perl;
}
# A private index answers 304 only after its access check: not from the rewrite phase.
map "$tilsit_private:$tilsit_page_not_modified" $tilsit_page_304 {
":1" 1;
default "";
}
map "$tilsit_private:$tilsit_file_not_modified" $tilsit_file_304 {
":1" 1;
default "";
}
map $tilsit_private $tilsit_visibility {
"" public;
default private;
}
# Methods other than GET and HEAD on the read path (uploads go to /legacy/, and
# older mirror clients' XML-RPC calls to /pypi).
map "$request_method:$uri" $tilsit_refused {
"~^(?:GET|HEAD):" "";
"~^POST:/(?:[a-z0-9][a-z0-9._-]*/)?pypi/?$" "";
"~^[^:]*:/(?:packages/|simple(?:/|$)|pypi/|[a-z0-9][a-z0-9._-]*/(?:simple|pypi)(?:/|$))" 1;
default "";
}
"""
_TOKEN_MAX = 4000  # nginx's NGX_CONF_BUFFER is 4096 bytes per parameter


def _check_perl(source: str) -> str:
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
    for name, (helpers, call) in _PERL_SETS.items():
        if helpers:
            # nginx evaluates a handler that starts with "use " as Perl code whose
            # last value is the handler: the helpers ride along with it.
            code = f"use strict;{_check_perl(helpers)}package main;\nsub {{ {call} }}"
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


def _tuf(tree: str) -> str:
    """TUF metadata at ``/<index>/tuf/`` and the ``<sha256>.<page>`` names TUF clients
    fetch (see tilsit.trust.layout), gated like the rest of the index."""
    named = f"/(?<tilsit_tuf_index>{_INDEX})"
    immutable = _IMMUTABLE.replace("public", "$tilsit_visibility")
    gate = f"set $tilsit_auth_index $tilsit_tuf_index;{_AUTH}"
    hashed = f"{named}/simple/(?:{_NAME}/)?[0-9a-f]{{64}}[.]index"
    html = (
        f'add_header Content-Security-Policy "{HTML_CSP}";\n'
        'add_header X-Content-Type-Options "nosniff";'
    )
    return f"""
location ~ "^{named}/tuf/(?:timestamp|root)[.]json$" {{
{gate}default_type application/json;
add_header Cache-Control "no-cache";
}}
location ~ "^{named}/tuf/[0-9]+[.][a-z0-9-]+[.]json$" {{
{gate}default_type application/json;
add_header Cache-Control "{immutable}";
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


def _private_files(tree: str) -> str:
    """A private index's files, under ``/<index>/packages/`` (see tilsit.render.tree)."""
    named = f"/(?<tilsit_files_index>{_INDEX})/packages"
    cache = _IMMUTABLE.replace("public", "private")
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
add_header Cache-Control "{cache}";
}}
location ~ "^{named}/([^/]+)/([^/]+)/([^/]+)/[^/.][^/]*$" {{
set $tilsit_file_etag '"$2$3$4"';
set $tilsit_auth_index $tilsit_files_index;{_AUTH}
default_type application/octet-stream;
etag off;
max_ranges 1;
if ($tilsit_file_304) {{ return 304; }}
add_header ETag $tilsit_file_etag;
add_header Cache-Control "{cache}";
}}"""


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
) -> str:
    """The ``perl_set`` and ``map`` lines and the ``server {}`` block, for an ``http {}`` include.

    ``upstream`` is tilsit's own server (``127.0.0.1:8080`` or a URL): uploads,
    ``/_/`` and every path outside the tree go there. Without it those paths answer
    404 (uploads 405): a read-only copy of the tree.

    ``proxy_indexes`` are served by tilsit itself, not from the tree: their pages
    must be revalidated after their TTL and their files fetched on first request,
    which only tilsit can do. ``/packages/`` misses then go to tilsit too.
    """
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
    page_cache = f"max-age={page_max_age}, public"

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
        _page_location(media, tree, content_type, page_cache)
        for media, content_type in [*_MEDIA_TYPES.items(), ("legacy", "application/json")]
    )
    server = f"""
server {{
listen {listen};
root {_quote(tree)};
absolute_redirect off;
server_tokens off;
log_not_found off;
charset off;
gzip off;
sendfile on;
tcp_nopush on;
client_max_body_size {max_upload_size + 1024 * 1024};
types {{ }}
default_type text/plain;

# The read path answers GET and HEAD only (see the map $tilsit_refused).
error_page 405 @tilsit_405;
if ($tilsit_refused) {{ return 405; }}
location @tilsit_405 {{
add_header Allow "GET, HEAD" always;
return 405 "Method Not Allowed: use GET, HEAD\n";
}}
{outside}

# Distribution files and their core metadata (PEP 658/714), immutable. A file's
# ETag is tilsit's: its sha256, as the path spells it.
location ^~ /packages/ {{
location ~ "^/packages/[^/]+/[^/]+/[^/]+/[^/.][^/]*[.]metadata$" {{{fetch}
default_type application/octet-stream;
etag off;
if_modified_since off;
max_ranges 0;
if ($tilsit_page_not_modified) {{ return 304; }}
add_header Last-Modified "";
add_header ETag $tilsit_page_etag;
add_header Cache-Control "{_IMMUTABLE}";
}}
location ~ "^/packages/([^/]+)/([^/]+)/([^/]+)/[^/.][^/]*$" {{{fetch}
default_type application/octet-stream;
set $tilsit_file_etag '"$1$2$3"';
etag off;
max_ranges 1;
if ($tilsit_file_not_modified) {{ return 304; }}
add_header ETag $tilsit_file_etag;
add_header Cache-Control "{_IMMUTABLE}";
}}
{_NOT_FOUND}
}}

# A mirror's freshness (tilsit mirror sync writes it into the tree).
location ~ "^/(?<tilsit_status_index>{_INDEX})/mirror-status[.]json$" {{
set $tilsit_auth_index $tilsit_status_index;{_AUTH}
default_type application/json;
add_header Cache-Control "no-cache";
try_files /$tilsit_status_index/mirror-status.json =404;
}}

# The default index ({default_index}) at /simple/ and /pypi/.
location = /simple {{
return 301 /simple/$is_args$args;
}}{default_static}

# A private index's files, and the access check of private indexes.{_private_files(tree)}{_auth_locations(proxy if upstream is not None else None)}

# TUF (PEP 458): each index's signed metadata and hashed pages.{_tuf(tree)}

# Every index by name, at /<index>/simple/ and /<index>/pypi/.
location ~ "^{named}/simple$" {{
{check}return 301 /$tilsit_index/simple/$is_args$args;
}}{_simple(named + "/simple", "$tilsit_index", check)}{_legacy(named + "/pypi", "$tilsit_index", check)}
location ~ "^{named}/(?:simple|pypi)/" {{
{_NOT_FOUND}
}}

# Pages, reached only through the rewrites above: one location per media type,
# since nginx takes Content-Type from the location. ETag and X-PyPI-Last-Serial
# are tilsit's own, computed in Perl and cached per worker by stat.{pages}
location = /.tilsit/406 {{
internal;
add_header Vary "Accept" always;
add_header Cache-Control "{page_cache}" always;
return 406 "Not Acceptable: none of {", ".join(_MEDIA_TYPES.values())} is acceptable to Accept: $http_accept\\n";
}}
location = /.tilsit/404-page {{
internal;
add_header Vary "Accept" always;
add_header Cache-Control "{page_cache}" always;
return 404 "Not Found: no such page\\n";
}}
location = /.tilsit/404 {{
internal;
return 404 "Not Found: no such page\\n";
}}

# Dot files (the tree's .serial) are never served.
location ^~ /. {{
{_NOT_FOUND}
}}
}}"""
    header = (
        "# tilsit's static tree served by nginx: generated by tilsit.nginxconf, see\n"
        "# nginx/README.md. Goes inside http {}; needs libnginx-mod-http-perl.\n"
    )
    return header + _perl_sets() + _reindent(_MAPS + server)


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
) -> str:
    """A whole ``nginx.conf`` for ``nginx -c FILE -p RUN_DIR -e RUN_DIR/error.log``.

    The pid file, logs and temp files go under ``run_dir``, and nginx stays in the
    foreground (``daemon off``) so that the caller owns the process. ``user`` matters
    only when nginx starts as root: the workers become that user and must be able to
    read the tree.
    """
    run = run_dir.resolve()
    temp = "".join(
        f"{kind}_temp_path {_quote(str(run / kind))};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    log = f"access_log {_quote(str(run / 'access.log'))};" if access_log else "access_log off;"
    body = render_nginx_config(
        tree_dir,
        listen,
        default_index,
        upstream,
        page_max_age=page_max_age,
        max_upload_size=max_upload_size,
        proxy_indexes=proxy_indexes,
    )
    main = (
        f"load_module {_quote(str(perl_module))};\n"
        + (f"user {user};\n" if user else "")
        + f"daemon off;\nworker_processes {workers};\n"
        + f"pid {_quote(str(run / 'nginx.pid'))};\n"
        + f"error_log {_quote(str(run / 'error.log'))} warn;\n"
        + "events {\nworker_connections 1024;\n}\n"
    )
    http = f"http {{\n{temp}{log}\nkeepalive_requests 100000;\n}}\n"
    # The include body goes in verbatim: its Perl string must keep its own layout.
    return _reindent(main) + http.replace("}\n", "") + body + "}\n"
