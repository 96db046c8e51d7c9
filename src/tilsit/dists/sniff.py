"""Recognising archive formats from raw bytes, to find files that are two formats at once.

A polyglot (say a ``.tar.gz`` that is also a valid ZIP) lets a scanner read one archive and
an installer another. Each reader asks here whether its file is also the other format.
"""

from __future__ import annotations

import struct

__all__ = [
    "EOCD_SIGNATURE",
    "EOCD_SIZE",
    "MAX_COMMENT",
    "TAR_BLOCK",
    "end_records_reaching_eof",
    "is_tar_header",
    "tar_checksums",
]

EOCD_SIGNATURE = b"PK\x05\x06"
EOCD_SIZE = 22  # the classic end of central directory record, without its comment
MAX_COMMENT = 0xFFFF
TAR_BLOCK = 512

_COMMENT_LENGTH = struct.Struct("<H")
_CHECKSUM = slice(148, 156)


def end_records_reaching_eof(tail: bytes) -> list[int]:
    """Offsets in ``tail`` (the file's last bytes) of ZIP end records whose comment ends the file.

    A ZIP reader finds the end record by scanning back from the end for its signature, and
    accepts one whose declared comment reaches exactly to the end of the file; a file with
    such a record is a ZIP archive to those readers, whatever else it is.
    """
    found = []
    position = tail.rfind(EOCD_SIGNATURE)
    while position >= 0:
        if position + EOCD_SIZE <= len(tail):
            (comment_length,) = _COMMENT_LENGTH.unpack_from(tail, position + 20)
            if position + EOCD_SIZE + comment_length == len(tail):
                found.append(position)
        position = tail.rfind(EOCD_SIGNATURE, 0, position)
    found.reverse()
    return found


def tar_checksums(block: bytes) -> tuple[int, int]:
    """The two checksums a tar header may carry: of unsigned bytes, and of signed ones.

    The checksum field itself counts as eight spaces. Old writers summed signed chars, so
    readers accept either sum.
    """
    rest = block[:148] + block[156:TAR_BLOCK]
    unsigned = sum(rest) + 8 * 0x20
    signed = unsigned - 256 * sum(1 for byte in rest if byte > 127)
    return unsigned, signed


def is_tar_header(block: bytes) -> bool:
    """Whether ``block`` is a tar header a tar reader would accept: magic and checksum."""
    if len(block) < TAR_BLOCK or block[257:262] != b"ustar":
        return False
    field = block[_CHECKSUM].split(b"\0", 1)[0].strip(b" ")
    if not field or any(digit not in b"01234567" for digit in field):
        return False
    return int(field, 8) in tar_checksums(block)
