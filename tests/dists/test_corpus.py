"""The shared ZIP confusion corpus: every reject/ archive refused, every accept/ one read.

The corpus lives beside the repository, in ``shared/corpora/zip-confusion``. Without it these
tests skip, except in CI (``CI=true``), where a missing corpus is a failure.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from tilsit.dists import UnsafeArchive
from tilsit.dists.zipread import read_zip

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpora" / "zip-confusion"

# Why each reject/ archive is refused: words the refusal must contain. The order of the
# reader's checks decides which defect is named when an archive has several; each one named
# here is a real disagreement between readers, not an incidental parse failure.
REJECT_REASONS = {
    "8bitcomment.zip": "comment contains the signature of an end of central directory record",
    "cd_comment.zip": "1 byte of unexplained data lie between the central directory and the end",
    "cd_extra_entry.zip": "two members named 'fixme'",
    "data_descriptor.zip": "flags 0x0008, but the central directory has 0x0000",
    "data_descriptor_bad_crc.zip": "flags 0x0008, but the central directory has 0x0000",
    "data_descriptor_bad_crc_0.zip": "flags 0x0008, but the central directory has 0x0000",
    "data_descriptor_bad_usize.zip": "flags 0x0008, but the central directory has 0x0000",
    "data_descriptor_bad_usize_no_sig.zip": "flags 0x0008, but the central directory has 0x0000",
    "data_descriptor_zip64.zip": "ZIP64 extra field in the local header of member 'fixme' is 0",
    "data_descriptor_zip64_usize.zip": "ZIP64 extra field in the local header of member 'fixme' is 0",
    "dupe_eocd.zip": "22 bytes of unexplained data (they contain an end of central directory record)",
    "eocd64_locator_mismatch.zip": "points to offset 1, where there is no ZIP64 end",
    "eocd64_without_eocd.zip": "lie between the ZIP64 end of central directory record and its locator",
    "eocd64_without_locator.zip": "ZIP64 end of central directory record without the locator",
    "extra3byte.zip": "ends with 3 stray bytes",
    "non_ascii_original_name.zip": "not ASCII and its entry lacks the UTF-8 flag",
    "not.zip": "not a ZIP archive",
    "prefix.zip": "4 bytes of other data come first",
    "shortextra.zip": "Extra field 0x7075 of the central directory entry for 'fixme' declares 9",
    "suffix_not_comment.zip": "4 bytes of trailing data follow the ZIP end record",
    "unicode_extra_chain.zip": "Extra field 0x7075 appears twice",
    "zip64_eocd_confusion.zip": "2 ZIP end of central directory records",
    "zip64_eocd_extensible_data.zip": "carries extensible data",
    "zip64_extra_csize.zip": "in a local header it must hold both sizes",
    "zip64_extra_too_short.zip": "is 8 bytes, but the entry marks 2 values as stored there",
    "zip64_extra_usize.zip": "in a local header it must hold both sizes",
    "zipinzip.zip": "2 ZIP end of central directory records",
}

# The corpus files these two under accept/, but they are content-substitution attacks: in
# their origin (the malo corpus) they are among the malicious archives, and uv refuses both.
# Their declared size (9 bytes: "# benign\n") disagrees with their data (51 bytes, ending in
# "print('malicious')"), and the CRC was forged to match both readings. A reader that trusts
# the declared size sees the benign text; one that inflates the whole stream, or honours the
# ZIP64 field, runs the rest. So they are refused, for the reasons below.
REFUSED_FROM_ACCEPT = {
    "short_usize.zip": "inflates to more than its declared 9 bytes",
    "short_usize_zip64.zip": "is 16 bytes, but the entry marks 0 values as stored there",
}


def corpus_files(kind: str) -> list[Path]:
    return sorted((CORPUS / kind).iterdir()) if (CORPUS / kind).is_dir() else []


def test_corpus_is_present() -> None:
    if (CORPUS / "reject").is_dir() and (CORPUS / "accept").is_dir():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"the ZIP confusion corpus is missing from {CORPUS}")
    pytest.skip(f"the ZIP confusion corpus is not at {CORPUS}")


@pytest.mark.parametrize("path", corpus_files("reject"), ids=lambda path: path.name)
def test_reject(path: Path) -> None:
    with pytest.raises(UnsafeArchive) as caught:
        read_zip(path)
    # A file added to the corpus later must still be refused, for a reason to review here.
    reason = REJECT_REASONS.get(path.name, "")
    assert reason in str(caught.value)


@pytest.mark.parametrize("path", corpus_files("accept"), ids=lambda path: path.name)
def test_accept(path: Path) -> None:
    if path.name in REFUSED_FROM_ACCEPT:
        with pytest.raises(UnsafeArchive, match=REFUSED_FROM_ACCEPT[path.name]):
            read_zip(path)
        return
    archive = read_zip(path, keep=lambda _name: True)
    data = path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as reference:
        expected = {
            info.filename.rstrip("/"): reference.read(info) for info in reference.infolist()
        }
    assert [member.name for member in archive.members] == list(expected)
    assert dict(archive.kept) == {
        name: content for name, content in expected.items() if name in archive.kept
    }


# The data descriptor archives also disagree with themselves on the descriptor flag (local
# header: set; central directory: clear), which is refused first. With the central
# directory's flag set to agree, each must still be refused for its descriptor, and the one
# whose descriptor is right must read.
DESCRIPTOR_REASONS = {
    "data_descriptor.zip": None,
    "data_descriptor_bad_crc.zip": "gives CRC 00000001, compressed size 7 and size 5",
    "data_descriptor_bad_crc_0.zip": "gives CRC 00000000, compressed size 0 and size 5",
    "data_descriptor_bad_usize.zip": "compressed size 7 and size 6",
    "data_descriptor_bad_usize_no_sig.zip": "compressed size 7 and size 6",
}


@pytest.mark.parametrize(
    "path",
    [path for path in corpus_files("reject") if path.name in DESCRIPTOR_REASONS],
    ids=lambda path: path.name,
)
def test_descriptor_refused_with_agreeing_flags(tmp_path: Path, path: Path) -> None:
    data = bytearray(path.read_bytes())
    central = data.rfind(b"PK\x01\x02")
    data[central + 8 : central + 10] = b"\x08\x00"  # the entry's general purpose flags
    patched = tmp_path / path.name
    patched.write_bytes(data)
    reason = DESCRIPTOR_REASONS[path.name]
    if reason is None:
        assert dict(read_zip(patched, keep=lambda _name: True).kept) == {"fixme": b"hello"}
        return
    with pytest.raises(UnsafeArchive, match="data descriptor of member 'fixme'") as caught:
        read_zip(patched)
    assert reason in str(caught.value)
