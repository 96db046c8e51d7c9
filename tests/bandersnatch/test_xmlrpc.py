"""XML-RPC (``POST /pypi``) for older mirror clients: bandersnatch 6.8.0, the newest on
Python 3.11, asks ``list_packages_with_serial`` on a first run and ``changelog_since_serial``
after it (``.tools/bandersnatch6``, from ``scripts/install-clients``).

The mirror runs are the real client against a live tilsit over TLS; the method, fault, size
and access tests speak to the same server with the standard library's ``xmlrpc.client``.
"""

from __future__ import annotations

import base64
import ssl
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bandersnatch.conftest import Upstream
from tests.bandersnatch.test_bandersnatch import (
    Bandersnatch,
    _downloads,
    _synced,
    assert_mirror_matches,
)
from tests.builders import make_sdist, make_wheel
from tests.clients.tools import describe
from tests.conftest import stop_process
from tests.readpath.conftest import need_nginx, start_nginx
from tests.uploads import upload
from tilsit.web.xmlrpc import MAX_CALL_BYTES

_SECRET = "secret-tool"


class _Proxy:
    """Calls ``xmlrpc.client.ServerProxy(...).<method>(...)``, one connection per call."""

    def __init__(self, url: str, context: ssl.SSLContext | None = None) -> None:
        self.url = url
        self.context = context

    def __getattr__(self, method: str) -> Any:
        def call(*args: Any) -> Any:
            with xmlrpc.client.ServerProxy(self.url, context=self.context) as server:
                return getattr(server, method)(*args)

        return call


def _proxy(upstream: Upstream, path: str = "/pypi", token: str | None = None) -> Any:
    url = upstream.url + path
    if token is not None:
        url = url.replace("https://", f"https://__token__:{token}@", 1)
    return _Proxy(url, upstream.context)


def _post(upstream: Upstream, body: bytes, path: str = "/pypi", **headers: str) -> httpx.Response:
    with upstream.http() as client:
        return client.post(path, content=body, headers={"Content-Type": "text/xml", **headers})


@pytest.fixture(scope="module")
def corpus(upstream: Upstream) -> Upstream:
    """The default index with three projects; a private index ``sec`` with one."""
    upstream.upload(
        make_wheel("alpha", "1.0"),
        make_sdist("alpha", "1.0"),
        make_wheel("alpha", "1.1"),
        make_wheel("alpha", "2.0rc1"),
        make_wheel("Beta.Pkg", "0.1"),
        make_sdist("gamma", "3.0"),
    )
    upstream.live.cli("index", "create", "sec", "--private")
    upstream.live.token("carol")  # carol exists; she holds no right on sec
    upstream.live.cli("index", "grant", "sec", "carol", "create")
    with upstream.http() as client:
        response = upload(
            client, make_wheel("Secret_Tool", "1.0"), _token(upstream), "/sec/legacy/"
        )
    assert response.status_code == 200, response.text
    return upstream


def _token(upstream: Upstream, user: str = "carol", **scope: Any) -> str:
    return upstream.live.token(user, **scope)


# --- the real client ----------------------------------------------------------------------


def test_bandersnatch6_mirrors_over_xmlrpc(corpus: Upstream, tmp_path: Path) -> None:
    mirror = Bandersnatch(tmp_path, corpus, tool="bandersnatch6", api_method="xmlrpc")
    mirror.program()  # skips (fails in CI) when bandersnatch 6 is not installed
    assert mirror.major_version() == 6

    names = sorted(p["name"] for p in corpus.root()[1]["projects"])
    assert {"alpha", "beta-pkg", "gamma"} <= set(names)
    mark = corpus.mark()
    first = mirror.run()
    assert "Syncing all packages." in first.stdout + first.stderr, describe(first)
    assert _synced(first) == (len(names), names), describe(first)
    assert ("POST", "/pypi", 200) in corpus.requests(mark)
    serial = corpus.serial()
    assert mirror.status() == serial
    assert_mirror_matches(corpus, mirror)

    # Nothing changed: one changelog call that names nothing; nothing fetched.
    mark = corpus.mark()
    second = mirror.run()
    assert "Syncing based on changelog." in second.stdout + second.stderr, describe(second)
    assert _synced(second) == (0, []), describe(second)
    assert corpus.requests(mark) == [("POST", "/pypi", 200)]
    assert mirror.status() == serial

    # One upload: the changelog names that project; only its file is downloaded.
    new = make_wheel("gamma", "3.1")
    corpus.upload(new)
    mark = corpus.mark()
    third = mirror.run()
    assert _synced(third) == (1, ["gamma"]), describe(third)
    assert _downloads(third) == [new.filename], describe(third)
    requested = corpus.requests(mark)
    assert requested[0] == ("POST", "/pypi", 200), requested
    assert [p for _, p, _ in requested if p.startswith("/pypi/")] == ["/pypi/gamma/json"]
    assert mirror.status() == corpus.serial() > serial
    assert_mirror_matches(corpus, mirror)


# --- each method ---------------------------------------------------------------------------


def test_list_packages_with_serial_matches_the_project_list(corpus: Upstream) -> None:
    listed = _proxy(corpus).list_packages_with_serial()
    _, root = corpus.root()
    assert listed == {p["name"]: p["_last-serial"] for p in root["projects"]}
    assert {"alpha", "beta-pkg", "gamma"} <= set(listed)
    assert _SECRET not in listed  # another index's project
    # /<index>/pypi is that index's; /main/pypi the default index's.
    assert _proxy(corpus, "/main/pypi").list_packages_with_serial() == listed


def test_changelog_since_serial(corpus: Upstream) -> None:
    proxy = _proxy(corpus)
    before = corpus.serial()
    corpus.upload(make_wheel("alpha", "3.0"))
    changes = proxy.changelog_since_serial(before)
    assert [(name, version, action) for name, version, _, action, _ in changes] == [
        ("alpha", "3.0", "add file")
    ]
    _, _, timestamp, _, serial = changes[0]
    assert isinstance(timestamp, int) and timestamp > 1_700_000_000
    assert serial == corpus.serial() == proxy.list_packages_with_serial()["alpha"]
    assert proxy.changelog_since_serial(serial) == []
    everything = proxy.changelog_since_serial(0)
    assert [c[4] for c in everything] == sorted(c[4] for c in everything)
    assert {c[0] for c in everything} >= {"alpha", "beta-pkg", "gamma"}


def test_package_releases(corpus: Upstream) -> None:
    corpus.upload(
        make_wheel("delta", "1.0"),
        make_wheel("delta", "1.1"),
        make_wheel("delta", "2.0rc1"),
        make_wheel("epsilon", "1.0b1"),
    )
    corpus.live.cli("yank", "delta", "1.1")
    proxy = _proxy(corpus)
    # As PyPI: the latest final release that is not yanked (else the latest pre-release);
    # with show_hidden, every version, newest first.
    assert proxy.package_releases("delta") == ["1.0"]
    assert proxy.package_releases("Delta", True) == ["2.0rc1", "1.1", "1.0"]
    assert proxy.package_releases("epsilon") == ["1.0b1"]
    assert proxy.package_releases("no-such-project") == []
    assert proxy.package_releases("no-such-project", True) == []


# --- faults and refusals ------------------------------------------------------------------


def test_unknown_method_is_a_fault(corpus: Upstream) -> None:
    for call in ("system.listMethods", "__class__", "__init__", "search", "release_urls"):
        response = _post(corpus, xmlrpc.client.dumps((), call).encode())
        assert response.status_code == 200  # a fault is an answer, as XML-RPC has it
        with pytest.raises(xmlrpc.client.Fault) as fault:
            xmlrpc.client.loads(response.content)
        assert fault.value.faultCode == -32601
        assert repr(call) in fault.value.faultString


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("list_packages_with_serial", (1,)),
        ("changelog_since_serial", ()),
        ("changelog_since_serial", ("10",)),
        ("changelog_since_serial", (True,)),
        ("package_releases", (3,)),
        ("package_releases", ("a", True, 1)),
    ],
)
def test_wrong_parameters_are_a_fault(corpus: Upstream, method: str, args: tuple[Any, ...]) -> None:
    with pytest.raises(xmlrpc.client.Fault) as fault:
        getattr(_proxy(corpus), method)(*args)
    assert fault.value.faultCode == -32602
    assert method in fault.value.faultString


def test_a_body_that_is_not_xml_rpc_is_400(corpus: Upstream) -> None:
    for body, reason in [
        (b"not xml at all", "not well-formed XML"),
        (b'{"method": "list_packages_with_serial"}', "not well-formed XML"),
        (b"<foo/>", "not an XML-RPC <methodCall>"),
        (b"<methodCall><params/></methodCall>", "no <methodName>"),
        (
            b"<methodCall><methodName>changelog_since_serial</methodName>"
            b"<params><param><value><int>x</int></value></param></params></methodCall>",
            "not a valid XML-RPC call",
        ),
    ]:
        response = _post(corpus, body)
        assert response.status_code == 400, (body, response.text)
        assert reason in response.text


def test_doctype_and_entities_are_refused(corpus: Upstream) -> None:
    """xmlrpc.client.loads would expand these (1000 bytes from 3 entity levels here)."""
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "xxxxxxxxxx">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        b"<methodCall><methodName>&c;</methodName><params/></methodCall>"
    )
    assert len(xmlrpc.client.loads(laughs)[1] or "") == 1000  # what the bare parser does
    response = _post(corpus, laughs)
    assert response.status_code == 400
    assert "DOCTYPE" in response.text
    external = (
        b'<?xml version="1.0"?><!DOCTYPE m SYSTEM "http://127.0.0.1:9/x.dtd">'
        b"<methodCall><methodName>list_packages_with_serial</methodName></methodCall>"
    )
    response = _post(corpus, external)
    assert response.status_code == 400
    assert "DOCTYPE" in response.text
    # An entity used without a declaration is no better.
    undeclared = b"<methodCall><methodName>&c;</methodName><params/></methodCall>"
    assert _post(corpus, undeclared).status_code == 400


def test_a_call_without_params_is_answered(corpus: Upstream) -> None:
    body = b"<methodCall><methodName>list_packages_with_serial</methodName></methodCall>"
    response = _post(corpus, body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")
    (listed,), _ = xmlrpc.client.loads(response.content)
    assert "alpha" in listed


def test_the_body_is_size_capped(corpus: Upstream) -> None:
    call = xmlrpc.client.dumps(("x" * MAX_CALL_BYTES,), "package_releases").encode()
    response = _post(corpus, call)
    assert response.status_code == 413
    assert str(MAX_CALL_BYTES) in response.text
    # Chunked, with no Content-Length to refuse it up front: counted as it comes.
    with corpus.http() as client:
        response = client.post(
            "/pypi", content=iter([call[:1000], call[1000:]]), headers={"Content-Type": "text/xml"}
        )
    assert response.status_code == 413
    # Just under the cap is read (and the long name is no project).
    small = xmlrpc.client.dumps(("x" * (MAX_CALL_BYTES - 400),), "package_releases")
    assert len(small) <= MAX_CALL_BYTES
    response = _post(corpus, small.encode())
    assert response.status_code == 200
    assert xmlrpc.client.loads(response.content)[0] == ([],)


def test_only_post_reaches_xmlrpc(corpus: Upstream) -> None:
    with corpus.http() as client:
        assert client.get("/pypi").status_code == 404
        assert client.put("/pypi", content=b"<methodCall/>").status_code == 405


def test_unknown_index_is_404(corpus: Upstream) -> None:
    call = xmlrpc.client.dumps((), "list_packages_with_serial").encode()
    response = _post(corpus, call, "/nowhere/pypi")
    assert response.status_code == 404
    assert "nowhere" in response.text


# --- a private index -----------------------------------------------------------------------


def test_private_index_reads_as_its_json_api(corpus: Upstream) -> None:
    call = xmlrpc.client.dumps((), "list_packages_with_serial").encode()
    response = _post(corpus, call, "/sec/pypi")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="tilsit sec"'

    # A token whose user has no right on sec: refused, as /sec/pypi/<project>/json is.
    dave = _token(corpus, "dave")
    with pytest.raises(xmlrpc.client.ProtocolError) as refused:
        _proxy(corpus, "/sec/pypi", dave).list_packages_with_serial()
    assert refused.value.errcode == 403
    with corpus.http() as client:
        basic = base64.b64encode(f"__token__:{dave}".encode()).decode()
        json_api = client.get(
            f"/sec/pypi/{_SECRET}/json", headers={"Authorization": f"Basic {basic}"}
        )
    assert json_api.status_code == 403
    with pytest.raises(xmlrpc.client.ProtocolError) as refused:
        _proxy(corpus, "/sec/pypi", dave).package_releases(_SECRET)
    assert refused.value.errcode == 403

    # carol (granted "create" on sec) reads all of it.
    carol = _proxy(corpus, "/sec/pypi", _token(corpus))
    listed = carol.list_packages_with_serial()
    assert list(listed) == [_SECRET]
    assert carol.package_releases(_SECRET) == ["1.0"]
    assert [c[0] for c in carol.changelog_since_serial(0)] == [_SECRET, _SECRET]

    # A token limited to the project reads that project's versions, not the whole index.
    token = _token(corpus, projects=[_SECRET], index="sec")
    limited = _proxy(corpus, "/sec/pypi", token)
    assert limited.package_releases(_SECRET) == ["1.0"]
    with corpus.http() as client:
        basic = base64.b64encode(f"__token__:{token}".encode()).decode()
        headers = {"Authorization": f"Basic {basic}"}
        assert client.get(f"/sec/pypi/{_SECRET}/json", headers=headers).status_code == 200
        assert client.get("/sec/simple/", headers=headers).status_code == 403
    for method, args in [("list_packages_with_serial", ()), ("changelog_since_serial", (1,))]:
        with pytest.raises(xmlrpc.client.ProtocolError) as refused:
            getattr(limited, method)(*args)
        assert refused.value.errcode == 403


# --- behind nginx ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nginx(corpus: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    need_nginx()
    run_dir = tmp_path_factory.mktemp("nginx")
    process, url = start_nginx(corpus.live.settings.tree_dir, corpus.url, run_dir)
    try:
        yield url
    finally:
        stop_process(process)


@pytest.mark.nginx
@pytest.mark.parametrize("path", ["/pypi", "/pypi/", "/main/pypi", "/main/pypi/"])
def test_nginx_passes_xmlrpc_to_tilsit(corpus: Upstream, nginx: str, path: str) -> None:
    listed = _Proxy(nginx + path).list_packages_with_serial()
    assert listed == _proxy(corpus).list_packages_with_serial()
    # Other methods on the read path are still refused by nginx itself.
    assert httpx.post(f"{nginx}/pypi/alpha/json").status_code == 405
    assert httpx.get(f"{nginx}/pypi/alpha/json").status_code == 200
