"""``tilsit verify``: check a copy of an index end to end against a pinned root.

The client is python-tuf's ``ngclient``, used through its public API only:
``refresh()`` walks root, timestamp, snapshot and targets; one probe path per
hashed bin makes ngclient fetch and verify that bin (it caches the verified
bytes in the metadata directory, which is where the target list is read
from); ``download_target()`` fetches each target under its hashed name. On top
of what a TUF client does, verify also fetches the plain names pip uses
(``/packages/…``, ``/<index>/packages/…``, ``/<index>/simple/<p>/``), checks
them against the signed target info, and reads the signed pages' links: a link
to a file that is not a target is an ``unlisted path``.

This module holds the entry point, :func:`verify`, and the walk itself. The
fault names and the report are in :mod:`tilsit.trust.faults` (metadata faults
exit 2, target faults 1, a clean copy 0); reading a page's links is in
:mod:`tilsit.trust.links`; the sources (a URL, or a directory holding a static
tree read by ``TreeFetcher`` without a server) are in
:mod:`tilsit.trust.verify_sources`.
"""

from __future__ import annotations

import hashlib
import random
import tempfile
import time
from itertools import count
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import httpx
from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, Root, SuccinctRoles, TargetFile, Targets
from tuf.ngclient import Updater

from tilsit.trust.faults import (
    BAD_METADATA,
    BROKEN_ROOT_CHAIN,
    MISSING,
    TAMPERED,
    UNLISTED,
    UNREACHABLE,
    Report,
    classify,
)
from tilsit.trust.links import JSON_TYPE, PAGE_HTML, PAGE_JSON, package_target, page_links
from tilsit.trust.verify_sources import Source

__all__ = ["default_state_dir", "probe_paths", "verify"]


def probe_paths(succinct: SuccinctRoles) -> dict[str, str]:
    """One path per bin that ``get_targetinfo`` will look up in that bin."""
    wanted = set(succinct.get_roles())
    probes: dict[str, str] = {}
    for n in count():
        path = f"tilsit-probe/{n}"
        role = succinct.get_role_for_target(path)
        if role not in probes:
            probes[role] = path
            if len(probes) == len(wanted):
                return probes
    raise AssertionError("unreachable")  # pragma: no cover


def default_state_dir(source: str, root: bytes) -> Path:
    key = hashlib.sha256(source.encode() + b"\0" + root).hexdigest()[:32]
    return Path.home() / ".cache" / "tilsit" / "verify" / key


def verify(
    source: str,
    root: bytes,
    *,
    index: str | None = None,
    projects: tuple[str, ...] = (),
    sample: int | None = None,
    state_dir: Path | None = None,
    timeout: float = 30.0,
    seed: int | None = None,
    cafile: str | None = None,
    token: str | None = None,
) -> Report:
    """Verify the index at ``source`` against the trusted ``root`` bytes.

    ``state_dir`` keeps ngclient's metadata cache between runs (so a rollback
    below what an earlier run saw is caught); None uses a throwaway directory.
    """
    started = time.monotonic()
    src = Source(source, index, timeout, cafile, token)
    report = Report(source=source if src.tree is None else f"{source} (index {src.index})")
    with tempfile.TemporaryDirectory(prefix="tilsit-verify-") as scratch:
        metadata_dir = state_dir or Path(scratch) / "metadata"
        metadata_dir.mkdir(parents=True, exist_ok=True)
        downloads = Path(scratch) / "targets"
        downloads.mkdir()
        try:
            _Run(src, root, metadata_dir, downloads, report).run(projects, sample, seed)
        finally:
            src.close()
    report.seconds = time.monotonic() - started
    return report


class _Run:
    def __init__(
        self, src: Source, root: bytes, metadata_dir: Path, downloads: Path, report: Report
    ) -> None:
        self.src = src
        self.root = root
        self.metadata_dir = metadata_dir
        self.downloads = downloads
        self.report = report
        self.targets: dict[str, TargetFile] = {}
        self.checked: set[str] = set()

    def updater(self) -> Updater:
        return Updater(
            metadata_dir=str(self.metadata_dir),
            metadata_base_url=self.src.metadata_url,
            target_dir=str(self.downloads),
            target_base_url=self.src.index_base,
            fetcher=self.src.fetcher,
            bootstrap=self.root,
        )

    def root_gap(self) -> int | None:
        """N+1 when ``N+1.root.json`` is absent but ``N+2.root.json`` exists.

        ngclient stops its root walk at the first 404, so without this probe
        a gap would only show as a later signature failure (or not at all).
        """
        try:
            version = Metadata[Root].from_file(str(self.metadata_dir / "root.json")).signed.version
        except (OSError, ValueError, tuf_errors.RepositoryError):
            version = Metadata[Root].from_bytes(self.root).signed.version
        self.report.root_version = version
        url = self.src.metadata_url
        try:
            b"".join(self.src.fetcher.fetch(f"{url}{version + 1}.root.json"))
            return None
        except tuf_errors.DownloadError:
            pass
        try:
            b"".join(self.src.fetcher.fetch(f"{url}{version + 2}.root.json"))
        except tuf_errors.DownloadError:
            return None
        return version + 1

    def metadata_fault(self, exc: Exception) -> None:
        failed = self.src.recorder.last_url.rsplit("/", 1)[-1]
        gap = self.root_gap()
        name, role = classify(exc, gap=gap is not None)
        detail = f"{type(exc).__name__}: {exc}"
        if gap is not None:
            detail = f"{gap}.root.json is missing but {gap + 1}.root.json exists; {detail}"
        self.report.add(name, failed if role == "metadata" else f"{role}.json", detail)

    def run(self, projects: tuple[str, ...], sample: int | None, seed: int | None) -> None:
        try:
            updater = self.updater()
        except tuf_errors.RepositoryError as exc:
            self.report.add(BAD_METADATA, "root.json", f"the pinned root is unusable: {exc}")
            return
        try:
            updater.refresh()
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as exc:
            self.metadata_fault(exc)
            return
        gap = self.root_gap()
        if gap is not None:
            self.report.add(
                BROKEN_ROOT_CHAIN,
                f"{gap}.root.json",
                f"missing, but {gap + 1}.root.json exists: clients stop at the gap",
            )
        self.load_timestamp_version()
        if not self.walk_bins(updater):
            return
        self.check(updater, projects, sample, seed)

    def load_timestamp_version(self) -> None:
        ts = Metadata.from_file(str(self.metadata_dir / "timestamp.json"))
        self.report.timestamp_version = ts.signed.version
        root = Metadata[Root].from_file(str(self.metadata_dir / "root.json")).signed
        marker = root.unrecognized_fields.get("x-tilsit-resigned")
        if isinstance(marker, dict):
            self.report.resigned = marker

    def walk_bins(self, updater: Updater) -> bool:
        top = Metadata[Targets].from_file(str(self.metadata_dir / "targets.json")).signed
        self.targets.update(top.targets)
        delegations = top.delegations
        if delegations is None:
            return True
        if delegations.succinct_roles is None:
            self.report.add(
                BAD_METADATA, "targets.json", "delegates to named roles; tilsit signs hashed bins"
            )
            return False
        succinct = delegations.succinct_roles
        probes = probe_paths(succinct)
        self.report.bins = len(probes)
        ok = True
        for role, probe in sorted(probes.items()):
            try:
                updater.get_targetinfo(probe)
            except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as exc:
                name, _ = classify(exc, gap=False)
                self.report.add(name, f"{role}.json", f"{type(exc).__name__}: {exc}")
                ok = False
                continue
            signed = Metadata[Targets].from_file(str(self.metadata_dir / f"{role}.json")).signed
            for path, info in signed.targets.items():
                if succinct.get_role_for_target(path) != role:
                    # ngclient would never look a path up here; a client cannot see it.
                    self.report.add(BAD_METADATA, path, f"listed in {role}, which does not own it")
                    continue
                self.targets[path] = info
        self.report.targets_listed = len(self.targets)
        return ok

    # -- targets -------------------------------------------------------------

    def check(
        self, updater: Updater, projects: tuple[str, ...], sample: int | None, seed: int | None
    ) -> None:
        everything = not projects and sample is None
        pages = [p for p in self.targets if p.startswith("simple/")]
        for path in sorted(p for p in pages if p.count("/") == 1):  # the project list
            self.check_page(updater, path)
        listed = sorted(
            {p.split("/")[1] for p in pages if p.count("/") == 2 and p.endswith("/" + PAGE_HTML)}
        )
        if projects:
            chosen = list(projects)
        elif sample is not None:
            chosen = random.Random(seed).sample(listed, min(sample, len(listed)))  # noqa: S311 - choosing what to check, not a secret
        else:
            chosen = listed
        for project in chosen:
            found = False
            for name in (PAGE_HTML, PAGE_JSON):
                path = f"simple/{project}/{name}"
                if path in self.targets:
                    found = True
                    self.check_page(updater, path)
            if not found:
                self.report.add(UNLISTED, f"simple/{project}/", "no signed page for this project")
        if everything:
            for path in sorted(set(self.targets) - self.checked):
                self.check_target(updater, path)
        self.report.targets_checked = len(self.checked)

    def check_target(self, updater: Updater, path: str) -> bytes | None:
        """Download ``path`` under its hashed name; its bytes when they verify."""
        self.checked.add(path)
        info = self.targets[path]
        local = self.downloads / hashlib.sha256(path.encode()).hexdigest()
        try:
            updater.download_target(info, str(local))
        except (
            tuf_errors.LengthOrHashMismatchError,
            tuf_errors.DownloadLengthMismatchError,
        ) as exc:
            self.report.add(TAMPERED, path, f"hashed copy: {type(exc).__name__}: {exc}")
            return None
        except tuf_errors.DownloadHTTPError as exc:
            if exc.status_code in (403, 404, 410):
                self.report.add(MISSING, path, f"hashed copy: HTTP {exc.status_code}")
            else:
                self.report.add(UNREACHABLE, path, f"hashed copy: {exc}")
            return None
        except (tuf_errors.DownloadError, httpx.HTTPError) as exc:
            self.report.add(UNREACHABLE, path, f"hashed copy: {type(exc).__name__}: {exc}")
            return None
        self.report.bytes_checked += info.length
        data = local.read_bytes() if path.startswith("simple/") else None
        local.unlink()
        return data

    def check_plain(self, path: str, url: str, accept: str | None = None) -> None:
        """The name pip fetches must hold exactly the signed bytes (read as a stream,
        never past the signed length)."""
        info = self.targets[path]
        try:
            read = self.src.read(url, info, accept)
        except httpx.HTTPError as exc:
            self.report.add(UNREACHABLE, path, f"plain name {url}: {type(exc).__name__}: {exc}")
            return
        self.report.plain_checked += 1
        if read is None:
            self.report.add(MISSING, path, f"plain name {url}: not found")
            return
        if (problem := read.problem(info)) is not None:
            self.report.add(TAMPERED, path, f"plain name {url}: {problem}")

    def check_page(self, updater: Updater, path: str) -> None:
        if path in self.checked:
            return
        data = self.check_target(updater, path)
        directory = path.rsplit("/", 1)[0] + "/"
        accept = JSON_TYPE if path.endswith(PAGE_JSON) else "text/html"
        page_url = self.src.index_base + directory
        self.check_plain(path, page_url, accept)
        if data is None:
            return
        self.report.pages_read += 1
        try:
            links = page_links(path, data)
        except (ValueError, KeyError, TypeError) as exc:
            self.report.add(TAMPERED, path, f"signed page does not parse: {exc}")
            return
        # Links resolve against the page's path on the server (or the tree);
        # an absolute link to another host is checked on the copy at hand.
        page_path = "http://verify.invalid" + self.src.index_path + directory
        for href, has_metadata in links:
            self.check_link(updater, path, page_path, href, has_metadata)

    def check_link(
        self, updater: Updater, page: str, page_url: str, href: str, has_metadata: bool
    ) -> None:
        url_path = unquote(urlsplit(urljoin(page_url, href)).path)
        target = self.target_for(url_path, page)
        if target is None and (unsigned := package_target(url_path)) is not None:
            # A file that is not signed (yet): a fault, unless a proxy has not fetched it
            # (its .metadata may be fetched already, as pip asks for that first).
            target = unsigned
        if target is None:
            self.report.add(UNLISTED, url_path, f"linked from {page} but not a signed target")
            return
        if target.startswith("simple/"):
            return  # a signed project page: checked when its project is chosen
        pairs = [(target, url_path)]
        if has_metadata:
            pairs.append((target + ".metadata", url_path + ".metadata"))
        for tpath, plain in pairs:
            if tpath not in self.targets:
                if not self.unfetched(plain):
                    self.report.add(UNLISTED, plain, f"linked from {page} but not a signed target")
                continue
            if tpath not in self.checked:
                self.check_target(updater, tpath)
                self.check_plain(tpath, self.src.origin_path(plain))

    def unfetched(self, url_path: str) -> bool:
        """A file a proxy index lists but has not fetched yet: it signs a file once it
        holds it, so until then its signed page is what pins the file's hash (and what
        pip checks the bytes against). Noted, not a fault."""
        if url_path in self.report.not_yet_fetched:
            return True  # linked from both pages of the project: asked once
        if not self.src.not_yet_fetched(self.src.origin_path(url_path)):
            return False
        self.report.not_yet_fetched.append(url_path)
        return True

    def target_for(self, url_path: str, page: str) -> str | None:
        """The target path a link on ``page`` names, or None when it names none."""
        parts = url_path.lstrip("/").split("/")
        if (candidate := package_target(url_path)) is not None:
            return candidate if candidate in self.targets else None
        if page.count("/") == 1 and len(parts) >= 3 and parts[-3] == "simple":
            # The project list links <project>/ under the index's simple/.
            project = f"simple/{parts[-2]}/"
            if any(project + n in self.targets for n in (PAGE_HTML, PAGE_JSON)):
                return project
        return None
