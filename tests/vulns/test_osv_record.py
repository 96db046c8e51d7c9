"""tilsit.spec.osv: one OSV record checked, reduced to PyPI, and matched as the schema's
evaluation says (explicit versions, then ECOSYSTEM ranges; "0" lowest; PEP 440 order)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.vulns import records
from tilsit.spec.osv import InvalidRecord, Range, parse_record


def _parse(record: dict[str, Any], label: str = "r.json") -> Any:
    return parse_record(json.dumps(record).encode(), label)


def test_a_pysec_record_keeps_its_pypi_entry_normalised() -> None:
    advisory = _parse(records.pysec(), f"{records.PYSEC}.json")
    assert advisory.id == records.PYSEC
    assert advisory.modified == datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert advisory.packages == {"vuln-pkg"}
    assert advisory.fixed_in("VULN.pkg") == ("1.2",)
    assert not advisory.malicious
    # Only the ECOSYSTEM range is evaluated; the GIT one is checked and left.
    (affected,) = advisory.affected
    assert [r.events for r in affected.ranges] == [(("introduced", "0"), ("fixed", "1.2"))]


def test_severity_is_kept_for_policies() -> None:
    advisory = _parse(records.ghsa())
    assert advisory.severity_level == "HIGH"
    assert advisory.severity[0]["type"] == "CVSS_V3"


@pytest.mark.parametrize(
    ("record", "version", "affected"),
    [
        (records.pysec(), "0.1", True),
        (records.pysec(), "1.1.9", True),
        (records.pysec(), "1.2rc1", True),  # a pre-release of the fix is still before it
        (records.pysec(), "1.2", False),
        (records.pysec(), "1.10", False),  # PEP 440 order, not string order
        (records.pysec(), "0.0.dev0", True),  # "0" is before every version
        (records.ghsa(), "1.0", False),
        (records.ghsa(), "1.1", True),
        (records.ghsa(), "1.3", True),  # last_affected is affected
        (records.ghsa(), "1.3.post1", False),
        (records.listed(), "2.0", True),
        (records.listed(), "2.0.0", True),  # the same version, spelled otherwise
        (records.listed(), "2.0.2", False),
        (records.malware(), "0.0.1", True),
        (records.malware(), "99", True),
    ],
)
def test_affects(record: dict[str, Any], version: str, affected: bool) -> None:
    advisory = _parse(record)
    (name,) = advisory.packages
    assert advisory.affects(name, version) is affected


def test_a_version_that_is_not_pep_440_matches_only_an_explicit_list() -> None:
    record = records.pysec()
    assert not _parse(record).affects("vuln-pkg", "1.0-custom")
    record["affected"][0]["versions"].append("1.0-custom")
    assert _parse(record).affects("vuln-pkg", "1.0-custom")


def test_limit_bounds_a_range_from_above() -> None:
    # The schema's example: BeforeLimits gates the range; the events open and close it.
    events = [("introduced", "0"), ("limit", "1.0"), ("introduced", "2.0"), ("limit", "3.0")]
    from packaging.version import Version

    verdicts = {v: Range.of(events).includes(Version(v)) for v in ("0.5", "1.5", "2.5", "3.5")}
    assert verdicts == {"0.5": True, "1.5": True, "2.5": True, "3.5": False}


def test_several_intervals_in_one_range() -> None:
    from packaging.version import Version

    events = [("fixed", "3.0"), ("introduced", "2.0"), ("fixed", "1.0"), ("introduced", "0")]
    included = [
        v
        for v in ("0.5", "1.0", "1.5", "2.0", "2.9", "3.0")
        if Range.of(events).includes(Version(v))
    ]
    assert included == ["0.5", "2.0", "2.9"]


def test_malicious_by_id_or_alias() -> None:
    assert _parse(records.malware()).malicious
    aliased = records.listed()
    aliased["aliases"].append("MAL-2022-1")
    assert _parse(aliased).malicious


def test_other_ecosystems_are_dropped() -> None:
    record = records.ghsa()
    record["affected"].append(
        {
            "package": {"ecosystem": "npm", "name": "@scope/x"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.0.0"}]}],
        }
    )
    assert _parse(record).packages == {"vuln-pkg"}


def test_a_withdrawn_record_says_so() -> None:
    assert _parse(records.withdrawn()).withdrawn == datetime(2024, 1, 9, tzinfo=UTC)


def _broken(path: list[Any], value: Any, *, delete: bool = False) -> dict[str, Any]:
    record = records.ghsa()
    target: Any = record
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return record


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            _broken(["affected", 0, "ranges", 0, "events"], [{"fixed": "1.0"}]),
            "affected[0].ranges[0]: an ECOSYSTEM range needs an 'introduced' event",
        ),
        (
            _broken(["affected", 0, "ranges", 0, "events"], [{"introduced": "1.x"}]),
            "affected[0].ranges[0].events[0].introduced: '1.x' is not a PEP 440 version",
        ),
        (
            _broken(["affected", 0, "ranges", 0, "events"], [{"introduced": "0", "fixed": "1"}]),
            "affected[0].ranges[0].events[0]: must have exactly one of introduced, fixed,"
            " last_affected, limit",
        ),
        (
            _broken(["affected", 0, "ranges", 0, "type"], "RANGE"),
            "affected[0].ranges[0].type: 'RANGE' is not one of ECOSYSTEM, SEMVER, GIT",
        ),
        (_broken(["modified"], None, delete=True), "modified: is required"),
        (_broken(["modified"], "yesterday"), "modified: 'yesterday' is not an RFC 3339"),
        (_broken(["id"], "../etc/passwd"), "id: '../etc/passwd' is not an OSV id"),
        (_broken(["aliases"], "CVE-1"), "aliases: must be a list, not a string"),
        (_broken(["affected", 0, "package", "name"], "not a name!"), "is not a PyPI project name"),
        (_broken(["affected", 0, "versions"], [1.0]), "affected[0].versions[0]: must be a string"),
        (_broken(["severity", 0], {"type": "CVSS_V3"}), "severity[0].score: must be a string"),
    ],
)
def test_an_invalid_record_names_itself_and_the_path(record: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRecord) as caught:
        _parse(record, "GHSA-9wx4-h78v-vm56.json")
    assert str(caught.value).startswith("GHSA-9wx4-h78v-vm56.json: ")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[]", "r.json: must be an object, not a list"),
        (b"{", "r.json: not a JSON document"),
        (b'{"id": NaN}', "r.json: not a JSON document"),
        (b"\xff", "r.json: not a JSON document"),
        (b"[" * 100_000 + b"]" * 100_000, "r.json: not a JSON document"),
    ],
)
def test_what_is_not_a_record(data: bytes, message: str) -> None:
    with pytest.raises(InvalidRecord, match=message.replace("[", r"\[")):
        parse_record(data, "r.json")
