"""OSV records in the real format of the PyPI export (osv.dev's ``PyPI/all.zip``), and the zip.

The shapes follow real records: PYSEC (PyPA advisory database, with a GIT range beside the
ECOSYSTEM one), GHSA (a CVSS vector in ``severity`` and GitHub's word in
``database_specific.severity``), OSSF malicious-package records (``MAL-``), a withdrawn
record, one with ``last_affected`` and one with only an explicit ``versions`` list.
"""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path
from typing import Any

PYSEC = "PYSEC-2024-48"
GHSA = "GHSA-9wx4-h78v-vm56"
WITHDRAWN = "PYSEC-2023-212"
LISTED = "PYSEC-2022-43012"
MALWARE = "MAL-2024-2873"


def pysec() -> dict[str, Any]:
    """vuln-pkg < 1.2 (spelled Vuln_Pkg, as some records do), with a GIT range too."""
    return {
        "id": PYSEC,
        "details": "Vuln-Pkg before 1.2 lets a crafted header inject responses.",
        "aliases": ["CVE-2024-24680", "GHSA-xxww-4h6c-7x2v"],
        "modified": "2024-03-01T10:00:00.123456Z",
        "published": "2024-02-06T22:15:54Z",
        "affected": [
            {
                "package": {
                    "name": "Vuln_Pkg",
                    "ecosystem": "PyPI",
                    "purl": "pkg:pypi/vuln-pkg",
                },
                "ranges": [
                    {
                        "type": "GIT",
                        "repo": "https://example.org/vuln-pkg",
                        "events": [
                            {"introduced": "0"},
                            {"fixed": "16f6b8a2b6e2c7d4c1f0a9e8d7c6b5a4f3e2d1c0"},
                        ],
                    },
                    {
                        "type": "ECOSYSTEM",
                        "events": [{"introduced": "0"}, {"fixed": "1.2"}],
                    },
                ],
                "versions": ["0.9", "1.0", "1.1"],
            }
        ],
        "references": [{"type": "ADVISORY", "url": "https://example.org/advisory/1"}],
        "schema_version": "1.6.0",
    }


def ghsa() -> dict[str, Any]:
    """vuln-pkg 1.1 through 1.3 (last_affected), HIGH."""
    return {
        "schema_version": "1.4.0",
        "id": GHSA,
        "modified": "2024-05-20T18:11:40Z",
        "published": "2024-05-14T15:30:26Z",
        "aliases": ["CVE-2024-35195"],
        "summary": "vuln-pkg leaks credentials on redirect",
        "details": "When a redirect crosses hosts, vuln-pkg 1.1 to 1.3 keep the header.",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:H/I:H/A:N"}],
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "vuln-pkg"},
                "ranges": [
                    {
                        "type": "ECOSYSTEM",
                        "events": [{"introduced": "1.1"}, {"last_affected": "1.3"}],
                    }
                ],
            }
        ],
        "references": [{"type": "WEB", "url": "https://example.org/ghsa"}],
        "database_specific": {
            "cwe_ids": ["CWE-670"],
            "github_reviewed": True,
            "severity": "HIGH",
            "nvd_published_at": "2024-05-20T21:15:09Z",
        },
    }


def withdrawn() -> dict[str, Any]:
    """Every version of vuln-pkg, but withdrawn: never stored."""
    return {
        "id": WITHDRAWN,
        "modified": "2024-01-10T00:00:00Z",
        "withdrawn": "2024-01-09T00:00:00Z",
        "summary": "A report that turned out wrong",
        "details": "Withdrawn: not a vulnerability.",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "vuln-pkg"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
            }
        ],
    }


def listed() -> dict[str, Any]:
    """other-pkg 2.0 and 2.0.1 by an explicit list, with no range."""
    return {
        "id": LISTED,
        "modified": "2023-11-01T00:00:00Z",
        "published": "2022-12-01T00:00:00Z",
        "aliases": ["CVE-2022-42969"],
        "details": "other-pkg 2.0 and 2.0.1 allow a ReDoS.",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "Other.Pkg"},
                "versions": ["2.0", "2.0.1"],
            }
        ],
    }


def malware() -> dict[str, Any]:
    """An OSSF malicious-packages record: every version of evil-pkg."""
    return {
        "modified": "2024-06-12T08:50:29Z",
        "published": "2024-06-12T08:50:29Z",
        "schema_version": "1.5.0",
        "id": MALWARE,
        "summary": "Malicious code in evil-pkg (PyPI)",
        "details": "\n---\n_-= Per source details. Do not edit below this line.=-_\n",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "evil-pkg"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
                "database_specific": {"malicious-packages-origins": [{"source": "ossf"}]},
            }
        ],
        "credits": [{"name": "OpenSSF: Package Analysis", "type": "FINDER"}],
        "database_specific": {"malicious-packages-origins": [{"source": "ossf-package-analysis"}]},
    }


def export() -> list[dict[str, Any]]:
    return [pysec(), ghsa(), withdrawn(), listed(), malware()]


def newer(record: dict[str, Any], modified: str, **changes: Any) -> dict[str, Any]:
    changed = copy.deepcopy(record)
    changed["modified"] = modified
    changed.update(changes)
    return changed


def write_zip(path: Path, records: list[dict[str, Any]], **members: bytes) -> Path:
    """An export as osv.dev publishes it: one ``<id>.json`` member per record, deflated."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for record in records:
            archive.writestr(f"{record['id']}.json", json.dumps(record, indent=2))
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def write_record(path: Path, record: dict[str, Any]) -> Path:
    path.write_text(json.dumps(record, indent=2))
    return path
