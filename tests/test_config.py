from pathlib import Path

import pytest

from tilsit.config import SETTINGS, InvalidSetting, Settings, load_settings


def test_defaults() -> None:
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.db_url == f"sqlite:///{Path('tilsit-data') / 'tilsit.db'}"
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "tilsit.toml"
    config.write_text('[tilsit]\nport = 9000\nhost = "::1"\nmax-upload-size = 10\n')
    settings = load_settings(config, environ={"TILSIT_PORT": "9001"})
    assert (settings.port, settings.host, settings.max_upload_size) == (9001, "::1", 10)
    assert load_settings(config, {"port": 9002}, environ={"TILSIT_PORT": "9001"}).port == 9002
    assert load_settings(config, {"port": None}, environ={}).port == 9000


def test_config_from_environment_variable(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('default_index = "corp"\n')
    assert load_settings(environ={"TILSIT_CONFIG": str(config)}).default_index == "corp"


@pytest.mark.parametrize(
    ("text", "message"),
    [("nonsense = 1\n", "unknown setting 'nonsense'"), ('port = "eighty"\n', "port must be int")],
)
def test_bad_file(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(InvalidSetting, match=message):
        load_settings(config, environ={})


def test_bad_environment() -> None:
    with pytest.raises(InvalidSetting, match="TILSIT_PORT"):
        load_settings(environ={"TILSIT_PORT": "x"})


def test_every_setting_has_help() -> None:
    for setting in SETTINGS:
        assert setting.help.endswith("."), setting.name
