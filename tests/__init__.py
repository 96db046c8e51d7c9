"""The test suite.

Its helper modules (builders, servers, shared checks such as ``tests.upstream.fidelity``)
assert too. pytest rewrites the asserts of test modules and conftest files only; these
are registered here, before any is imported, so a failing check in one shows the values
it compared rather than a bare AssertionError.
"""

from pathlib import Path

import pytest

_HERE = Path(__file__).parent
pytest.register_assert_rewrite(
    *(
        ".".join(("tests", *path.relative_to(_HERE).with_suffix("").parts))
        for path in _HERE.rglob("*.py")
        if not path.name.startswith(("test_", "conftest", "__init__"))
        and "node_modules" not in path.parts
    )
)
