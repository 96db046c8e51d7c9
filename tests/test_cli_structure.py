"""The shape of the ``tilsit.cli`` package: every command group in its own module,
importing only downward, and the whole command tree reachable from ``tilsit``."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from importlib import import_module
from pathlib import Path

import click

import tilsit.cli

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(tilsit.cli.__file__).parent
# Modules every command module may import: they hold no commands.
SHARED = {"options", "upstream_options"}

# Every command path of `tilsit`: a command lost (or misplaced) in a move shows here.
COMMANDS = {
    "audit": ["export"],
    "backup": None,
    "delete": None,
    "downloads": ["import-log"],
    "fsck": None,
    "index": [
        "create",
        "delete",
        "grant",
        "list",
        "members",
        "permissions",
        "reservations",
        "reserve",
        "revoke",
        "route",
        "set",
        "unreserve",
        "unroute",
    ],
    "init": None,
    "keys": ["init", "rebin", "resign", "rotate", "show"],
    "mirror": ["configure", "status", "sync"],
    "nginx-config": None,
    "policy": ["exempt", "set", "show", "unexempt"],
    "publisher": ["add", "list", "remove"],
    "rebuild": None,
    "restore": None,
    "review": ["approve", "list", "reject", "request"],
    "role": ["add", "list", "remove"],
    "search": ["rebuild"],
    "serve": None,
    "settings": None,
    "switch": ["list", "off", "on"],
    "token": ["create", "list", "revoke"],
    "tuf": ["export-static", "refresh"],
    "unyank": None,
    "user": ["admin", "create", "disable", "enable", "list", "set-password"],
    "verify": None,
    "why": None,
    "vuln": ["import", "list", "show"],
    "yank": None,
}


def modules() -> dict[str, ast.Module]:
    return {
        path.stem: ast.parse(path.read_text(), str(path)) for path in sorted(PACKAGE.glob("*.py"))
    }


def imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in a module of tilsit.cli, also those inside
    functions, relative ones resolved."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # every module here, __init__ too, is in package tilsit.cli
                package = ["tilsit", "cli"][: 3 - node.level]
                module = ".".join([*package, module] if module else package)
            found.append((module, [alias.name for alias in node.names]))
    return found


def cli_modules_named(module: str, names: list[str]) -> set[str]:
    """The modules of tilsit.cli an import reaches: ``tilsit.cli.x`` or ``from tilsit.cli import x``."""
    if module == "tilsit.cli":
        return {"__init__", *names}
    if module.startswith("tilsit.cli."):
        return {module.split(".")[2]}
    return set()


def test_the_package_has_one_module_per_group_and_shared_modules() -> None:
    found = set(modules())
    assert {"__init__", *SHARED} <= found
    assert not (PACKAGE.parent / "cli.py").exists()
    # The CLI lives only here: no *_cli modules beside it, none in upstream/.
    leftovers = [
        str(p.relative_to(PACKAGE.parent))
        for p in PACKAGE.parent.rglob("*.py")
        if PACKAGE not in p.parents
        and (p.stem == "cli" or p.stem.endswith(("_cli", "cli_options")))
    ]
    assert leftovers == []


def test_command_modules_import_only_downward() -> None:
    wrong = []
    for name, tree in modules().items():
        if name == "__init__":
            continue
        allowed = SHARED - {name}
        for module, names in imports(tree):
            reached = cli_modules_named(module, names) - allowed
            if reached:
                wrong.append(f"tilsit.cli.{name} imports {module} {names}")
    assert wrong == []


def test_no_module_imports_a_private_name_of_another() -> None:
    wrong = [
        f"tilsit.cli.{name}: from {module} import {imported}"
        for name, tree in modules().items()
        for module, names in imports(tree)
        for imported in names
        if imported.startswith("_") and module.startswith("tilsit")
    ]
    wrong += [
        f"tilsit.cli.{name}: import {module}"
        for name, tree in modules().items()
        for module, _ in imports(tree)
        if module.startswith("tilsit.") and any(p.startswith("_") for p in module.split("."))
    ]
    assert wrong == []


def test_the_package_names_every_command_module() -> None:
    """``tilsit.cli`` names each command module in its table; none is left out, and
    each name's module holds that command."""
    commands = set(modules()) - SHARED - {"__init__"}
    assert {module for module, _ in tilsit.cli.COMMANDS.values()} == commands
    for name, (module, attribute) in tilsit.cli.COMMANDS.items():
        command = getattr(import_module(f"tilsit.cli.{module}"), attribute)
        assert command.name == name


def test_the_command_tree() -> None:
    main = tilsit.cli.main
    context = click.Context(main)
    assert main.list_commands(context) == sorted(COMMANDS)
    for name, subcommands in COMMANDS.items():
        command = main.get_command(context, name)
        if subcommands is None:
            assert not isinstance(command, click.Group), name
        else:
            assert isinstance(command, click.Group), name
            assert sorted(command.commands) == subcommands, name
    assert main.get_command(context, "no-such-command") is None


def _python(*args: str) -> str:
    """What a fresh interpreter over this checkout's src/ prints."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, check=True, env=env, timeout=120
    )
    return result.stdout


def test_a_command_imports_only_its_own_module() -> None:
    """``tilsit mirror sync`` (a cron job, timed against bandersnatch) does not import
    the web app or the other command groups."""
    probe = (
        "import sys; from tilsit.cli import main; import click;"
        " main.get_command(click.Context(main), 'mirror');"
        " print(sorted(m for m in sys.modules if m.startswith(('tilsit.cli.', 'tilsit.web'))))"
    )
    loaded = _python("-c", probe)
    assert "tilsit.cli.mirror" in loaded
    for other in ("tilsit.cli.serve", "tilsit.cli.audit", "tilsit.web.app", "tilsit.web.ui"):
        assert f"'{other}'" not in loaded, other


def test_tilsit_help_lists_every_group() -> None:
    """``python -m tilsit --help`` (the __main__ entry) names every command and group."""
    shown = _python("-m", "tilsit", "--help")
    listed = shown.split("Commands:", 1)[1].splitlines()
    names = {line.split()[0] for line in listed if line.startswith("  ") and line.strip()}
    assert names == set(COMMANDS)


def test_the_console_script_names_the_root_group() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attribute = scripts["tilsit"].partition(":")
    assert getattr(import_module(module), attribute) is tilsit.cli.main
