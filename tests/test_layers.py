"""The layer contract in pyproject.toml covers the whole package, and what it cannot see.

``lint-imports`` (run by scripts/test) checks the contract itself; these tests keep
it from going stale: a new top-level package or module must be given a layer, and
the Alembic migrations (a directory of scripts, not a package, so outside the
import graph) import nothing above ``db``.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import tilsit

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(tilsit.__file__).parent


def _layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contract = next(c for c in config["contracts"] if c["type"] == "layers")
    return [
        name.strip() for layer in contract["layers"] for name in layer.replace(":", "|").split("|")
    ]


def test_every_top_level_module_has_a_layer() -> None:
    present = {
        f"tilsit.{path.stem if path.is_file() else path.name}"
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__")
        or (path.is_dir() and (path / "__init__.py").exists())
    }
    assert present - set(_layers()) == set(), "give each new package a layer in pyproject.toml"
    assert set(_layers()) - present == set(), "a layer names a module that no longer exists"


def _tilsit_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tilsit"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("tilsit"))
    return found


def test_migrations_import_only_db_and_spec() -> None:
    migrations = PACKAGE / "db" / "migrations"
    scripts = [*migrations.glob("*.py"), *migrations.glob("versions/*.py")]
    assert len(scripts) > 4
    wrong = {
        f"{path.relative_to(PACKAGE)} imports {module}"
        for path in scripts
        for module in _tilsit_imports(path)
        if not module.startswith(("tilsit.db", "tilsit.spec"))
    }
    assert wrong == set()


def test_no_module_imports_another_modules_private_names() -> None:
    """What one module shares with another is public (in its ``__all__``); a leading
    underscore means "only here", so importing one hides a dependency."""
    wrong = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tilsit"):
                wrong.update(
                    f"{path.relative_to(PACKAGE)}: from {node.module} import {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                )
    assert wrong == set()
