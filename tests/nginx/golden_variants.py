"""The inputs of the golden nginx configurations in tests/nginx/golden/.

Each file there is what ``tilsit nginx-config`` printed for these inputs before the
Perl module and the templates moved out of Python strings into files; the tree and
run directories are written as ``@TREE@`` and ``@RUN@`` so the files do not depend
on where the test runs. Regenerate only for an intended change of the output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tilsit.nginx import render_nginx_config, render_standalone

GOLDEN = Path(__file__).parent / "golden"

# name -> (standalone?, positional args after the tree, keyword args)
VARIANTS: dict[str, tuple[bool, tuple[str, str, str | None], dict[str, Any]]] = {
    "default": (False, ("80", "main", "127.0.0.1:8080"), {}),
    "listen": (False, ("127.0.0.1:8443 reuseport", "main", "127.0.0.1:8080"), {}),
    "upstream": (
        False,
        ("80", "team", "http://[::1]:9000/"),
        {"page_max_age": 30, "max_upload_size": 5 * 1024 * 1024},
    ),
    "no-upstream": (False, ("80", "main", None), {}),
    "proxy-default": (False, ("80", "main", "127.0.0.1:8080"), {"proxy_indexes": ["main"]}),
    "proxy-other": (
        False,
        ("80", "main", "127.0.0.1:8080"),
        {"proxy_indexes": ["pypi-cache", "team"]},
    ),
    "standalone": (True, ("80", "main", "127.0.0.1:8080"), {}),
    "standalone-full": (
        True,
        ("127.0.0.1:8081", "main", None),
        {
            "user": "www-data",
            "workers": "auto",
            "perl_module": Path("/opt/nginx/modules/ngx_http_perl_module.so"),
            "access_log": True,
            "page_max_age": 60,
        },
    ),
}


def render(name: str, tree: Path, run: Path) -> str:
    """The configuration of variant ``name``, with the directories as placeholders."""
    standalone, args, kwargs = VARIANTS[name]
    if standalone:
        text = render_standalone(tree, *args, run_dir=run, **kwargs)
    else:
        text = render_nginx_config(tree, *args, **kwargs)
    return text.replace(str(run.resolve()), "@RUN@").replace(str(tree.resolve()), "@TREE@")
