"""Errors of the index domain, each named for what is refused.

IndexError_ (base; carries the HTTP status the web layer answers with)
├── UnknownIndex, UnknownProject, UnknownRelease, UnknownFile   404
├── InvalidUpload              400  (form fields, digests, archive, metadata)
│   ├── FileExists             400  same filename, other bytes
│   ├── FilenameReused         400  filename used before, since deleted
│   ├── DuplicateDistribution  400  same version (another spelling) and same tags
│   └── ProjectNameTooSimilar  400  confusable with an existing project
├── UploadTooLarge             413
├── Forbidden                  403  token not allowed for this index/project
│   └── SecondFactorRequired   403  the 2FA policy applies and the account has none
├── TooManyRequests            429  a rate limit (carries Retry-After)
└── Unavailable                503  an admin switch (read-only, no uploads)
"""

from __future__ import annotations

__all__ = [
    "DuplicateDistribution",
    "FileExists",
    "FilenameReused",
    "Forbidden",
    "IndexError_",
    "InvalidUpload",
    "ProjectNameTooSimilar",
    "SecondFactorRequired",
    "TooManyRequests",
    "Unavailable",
    "UnknownFile",
    "UnknownIndex",
    "UnknownProject",
    "UnknownRelease",
    "UploadTooLarge",
]


class IndexError_(Exception):
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownIndex(IndexError_):
    status = 404


class UnknownProject(IndexError_):
    status = 404


class UnknownRelease(IndexError_):
    status = 404


class UnknownFile(IndexError_):
    status = 404


class InvalidUpload(IndexError_):
    status = 400


class FileExists(InvalidUpload):
    pass


class FilenameReused(InvalidUpload):
    pass


class DuplicateDistribution(InvalidUpload):
    pass


class ProjectNameTooSimilar(InvalidUpload):
    pass


class UploadTooLarge(IndexError_):
    status = 413


class Forbidden(IndexError_):
    status = 403


class SecondFactorRequired(Forbidden):
    pass


class TooManyRequests(IndexError_):
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(IndexError_):
    status = 503
