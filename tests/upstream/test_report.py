"""A sync's report holds a bounded number of failure reasons, whatever the upstream's size."""

from __future__ import annotations

from tilsit.upstream.report import FAILURES_KEPT, SyncReport


def test_failures_past_the_bound_are_counted_not_kept() -> None:
    # An upstream gone down mid-run fails every project it lists: at 100,000
    # projects the report must not hold a reason for each.
    report = SyncReport("mirror")
    for n in range(10 * FAILURES_KEPT):
        report.fail(f"project-{n}", "HTTP 503")
    assert len(report.failed) == FAILURES_KEPT
    assert list(report.failed)[:2] == ["project-0", "project-1"]  # the first ones, named
    assert report.failures == 10 * FAILURES_KEPT
    assert not report.ok
    assert f"{10 * FAILURES_KEPT} failed" in report.summary()


def test_a_project_named_twice_counts_once() -> None:
    report = SyncReport("mirror")
    report.fail("one", "its fetch failed")
    report.fail("one", "its apply failed")
    assert report.failures == 1
    assert report.failed == {"one": "its apply failed"}
    assert "1 failed" in report.summary()


def test_a_report_without_failures_is_ok() -> None:
    report = SyncReport("mirror")
    assert report.ok and report.failures == 0
