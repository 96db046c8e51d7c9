"""``tilsit review`` and ``tilsit index grant … review`` as an operator types them."""

from __future__ import annotations

from tests.conftest import run_cli
from tests.reviews.conftest import counts
from tilsit.config import Settings
from tilsit.instance import Instance


def _refused(settings: Settings, *args: str) -> str:
    """The one line a refused command prints; it exits 1 without a traceback."""
    result = run_cli(settings, *args, check=False)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_the_review_commands(settings: Settings, stack: Instance) -> None:
    out = run_cli(settings, "index", "grant", "all", "dave", "review").stdout
    assert "granted 'review' on 'all' for 'dave'" in out
    assert "dave\treview" in run_cli(settings, "index", "permissions", "all").stdout
    assert "virtual" in _refused(settings, "index", "grant", "mir", "dave", "review")

    out = run_cli(settings, "review", "request", "all", "requests-ish==1.0").stdout
    assert out.strip() == "requested a review of requests-ish==1.0 in 'all'"
    out = run_cli(settings, "review", "request", "all", "Requests.Ish==1.0.0").stdout
    assert "already pending (asked by cli)" in out
    run_cli(settings, "review", "request", "all", "requests-ish==2.0")
    listed = run_cli(settings, "review", "list", "all", "--state", "pending").stdout
    rows = [line.split("\t") for line in listed.splitlines()]
    assert [row[:2] for row in rows] == [
        ["requests-ish==1.0", "pending"],
        ["requests-ish==2.0", "pending"],
    ]
    assert all(row[2].startswith("cli ") and row[3] == "-" for row in rows)

    before = counts(stack)
    assert "needs a reason" in _refused(settings, "review", "reject", "all", "requests-ish==2.0")
    assert "not PROJECT==VERSION" in _refused(settings, "review", "approve", "all", "requests-ish")
    assert "no release '9.0'" in _refused(settings, "review", "approve", "all", "requests-ish==9.0")
    assert "hosted index 'internal'" in _refused(
        settings, "review", "request", "all", "internal-tool==1.0"
    )
    assert "reviews are for virtual indexes" in _refused(settings, "review", "list", "mir")
    assert "no index named 'nope'" in _refused(settings, "review", "request", "nope", "a==1")
    assert counts(stack) == before

    run_cli(settings, "review", "approve", "all", "requests-ish==1.0")
    out = run_cli(
        settings, "review", "reject", "all", "requests-ish==2.0", "--reason", "typosquat bait"
    ).stdout
    assert out.strip() == "rejected requests-ish==2.0 in 'all'"
    line = _refused(settings, "review", "request", "all", "requests-ish==2.0")
    assert "rejected for 'all' by cli" in line and line.endswith(": typosquat bait")
    assert "already approved" in _refused(settings, "review", "request", "all", "requests-ish==1")
    listed = run_cli(settings, "review", "list", "all").stdout.splitlines()
    assert [line.split("\t")[1] for line in listed] == ["approved", "rejected"]
    assert listed[1].endswith("\ttyposquat bait")
    assert run_cli(settings, "review", "list", "all", "--state", "pending").stdout == ""
    exported = run_cli(settings, "audit", "export", "--project", "requests-ish").stdout
    for action in ("review.requested", "review.approved", "review.rejected"):
        assert action in exported
