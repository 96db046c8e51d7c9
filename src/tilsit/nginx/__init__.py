"""nginx in front of tilsit's static tree: the generated configuration and its Perl.

:mod:`tilsit.nginx.config` fills the templates shipped here (``server.conf``,
``maps.conf``, ``nginx.conf``) and cuts ``TilsitNginx.pm`` into its ``perl_set``
handlers; see ``nginx/README.md`` for running it.
"""

from __future__ import annotations

from tilsit.nginx.config import PERL_MODULE, render_nginx_config, render_standalone

__all__ = ["PERL_MODULE", "render_nginx_config", "render_standalone"]
