import stat

import pytest
from pydantic import ValidationError

from app.settings import Settings, SettingsError, get_settings, load_or_create_secret


def test_defaults_use_sqlite_in_the_data_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("CACT_DATABASE_URL", raising=False)
    settings = Settings(data_dir=tmp_path / "var")
    assert settings.database_url == f"sqlite:///{(tmp_path / 'var' / 'cact.sqlite3').as_posix()}"
    assert settings.language == "id"
    assert settings.is_sqlite


def test_secret_is_generated_once_private_and_stable(tmp_path):
    settings = Settings(data_dir=tmp_path)
    first = settings.resolved_secret()
    assert len(first) >= 32
    mode = stat.S_IMODE((tmp_path / "secret_key").stat().st_mode)
    assert mode == 0o600
    assert Settings(data_dir=tmp_path).resolved_secret() == first
    other = Settings(data_dir=tmp_path / "other").resolved_secret()
    assert other != first  # never a shared, hard-coded default


def test_secret_from_environment_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("CACT_SECRET_KEY", "s" * 40)
    assert Settings(data_dir=tmp_path).resolved_secret() == "s" * 40
    assert not (tmp_path / "secret_key").exists()


def test_truncated_secret_file_is_refused(tmp_path):
    (tmp_path / "secret_key").write_text("short\n")
    with pytest.raises(SettingsError, match="shorter than 32"):
        load_or_create_secret(tmp_path)


def test_postgres_url_selects_psycopg_3():
    settings = Settings(database_url="postgresql://u@db.example/cact")
    assert settings.database_url == "postgresql+psycopg://u@db.example/cact"
    assert not settings.is_sqlite


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("CACT_LANGUAGE", "fr", "CACT_LANGUAGE"),
        ("CACT_DATABASE_URL", "mysql://x/y", "CACT_DATABASE_URL"),
        ("CACT_SECRET_KEY", "too-short", "CACT_SECRET_KEY"),
        ("CACT_TIMEZONE", "Mars/Olympus", "CACT_TIMEZONE"),
        ("CACT_ARGON2_MEMORY_KIB", "1024", "CACT_ARGON2_MEMORY_KIB"),
    ],
)
def test_invalid_settings_stop_with_a_message_naming_the_variable(monkeypatch, env, value, message):
    monkeypatch.setenv(env, value)
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError) as excinfo:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert message in str(excinfo.value)
    assert "invalid configuration" in str(excinfo.value)


def test_validation_error_is_not_swallowed_by_direct_construction():
    with pytest.raises(ValidationError):
        Settings(language="de")
