"""Entry points uvicorn imports: the app built from settings in the environment."""

from __future__ import annotations

from tilsit.config import load_settings
from tilsit.instance import open_instance
from tilsit.web.app import TilsitApp
from tilsit.web.bodies import BoundedBodies, bounded
from tilsit.web.reason import install

__all__ = ["app_from_env", "build_app"]


def build_app(instance_settings_file: str | None = None) -> BoundedBodies:
    from pathlib import Path

    settings = load_settings(Path(instance_settings_file) if instance_settings_file else None)
    install()
    return bounded(TilsitApp(open_instance(settings)), settings)


def app_from_env() -> BoundedBodies:
    """uvicorn ``factory=True`` target for several workers; settings come from TILSIT_*."""
    return build_app()
