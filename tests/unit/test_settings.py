import os
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
    first = load_or_create_secret(tmp_path)
    assert len(first) >= 32
    mode = stat.S_IMODE((tmp_path / "secret_key").stat().st_mode)
    assert mode == 0o600
    assert load_or_create_secret(tmp_path) == first
    assert Settings(data_dir=tmp_path).resolved_secret() == first
    other = load_or_create_secret(tmp_path / "other")
    assert other != first  # never a shared, hard-coded default


def test_resolved_secret_never_generates_a_key(tmp_path):
    """Only keycheck (for an empty database) makes a key: reading one that is missing says
    where it should be and how to get it back."""
    with pytest.raises(SettingsError) as excinfo:
        Settings(data_dir=tmp_path).resolved_secret()
    assert str(tmp_path / "secret_key") in str(excinfo.value)
    assert "CACT_SECRET_KEY" in str(excinfo.value) and "backup" in str(excinfo.value)
    assert not (tmp_path / "secret_key").exists()


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


# -- one configuration, from anywhere ---------------------------------------------------------


@pytest.fixture
def no_cact_env(monkeypatch, tmp_path):
    """No CACT_* variables, no system config, and a working directory without .env."""
    import app.settings as settings_module

    for key in list(os.environ):
        if key.upper().startswith("CACT_"):
            monkeypatch.delenv(key)
    monkeypatch.setattr(settings_module, "SYSTEM_CONFIG", tmp_path / "etc-cact" / "cact.env")
    empty = tmp_path / "cwd"
    empty.mkdir()
    monkeypatch.chdir(empty)
    return monkeypatch


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_config_file_gives_the_same_data_dir_from_any_working_directory(no_cact_env, tmp_path):
    config = write(tmp_path / "conf" / "cact.env",
                   "# lab server\nCACT_DATA_DIR=state\nexport CACT_LANGUAGE='en'\n"
                   "CACT_SESSION_IDLE_MINUTES=45  # shorter at night\n")
    no_cact_env.setenv("CACT_CONFIG", str(config))
    first = Settings()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    no_cact_env.chdir(elsewhere)
    second = Settings()
    assert first.data_dir == second.data_dir == tmp_path / "conf" / "state"
    assert first.database_url == f"sqlite:///{tmp_path / 'conf' / 'state' / 'cact.sqlite3'}"
    assert second.language == "en" and second.session_idle_minutes == 45


def test_environment_overrides_the_file_and_arguments_override_both(no_cact_env, tmp_path):
    config = write(tmp_path / "cact.env", "CACT_LANGUAGE=en\nCACT_TIMEZONE=Asia/Makassar\n")
    no_cact_env.setenv("CACT_CONFIG", str(config))
    no_cact_env.setenv("CACT_TIMEZONE", "Asia/Jayapura")
    settings = Settings()
    assert settings.language == "en" and settings.timezone == "Asia/Jayapura"
    assert Settings(timezone="Asia/Jakarta").timezone == "Asia/Jakarta"


def test_file_order_cact_config_then_system_file_then_dot_env(no_cact_env, tmp_path):
    import app.settings as settings_module
    from app.settings import config_file_path

    assert config_file_path() == (None, "none")
    assert Settings().language == "id"
    write(tmp_path / "cwd" / ".env", "CACT_LANGUAGE=en\n")
    assert config_file_path()[0] == tmp_path / "cwd" / ".env"
    assert Settings().language == "en"
    system = write(settings_module.SYSTEM_CONFIG, "CACT_TIMEZONE=Asia/Makassar\n")
    assert config_file_path() == (system, "system configuration")
    settings = Settings()
    assert settings.timezone == "Asia/Makassar" and settings.language == "id"  # .env unused
    chosen = write(tmp_path / "chosen.env", "CACT_TIMEZONE=Asia/Jayapura\n")
    no_cact_env.setenv("CACT_CONFIG", str(chosen))
    assert config_file_path() == (chosen, "CACT_CONFIG")
    assert Settings().timezone == "Asia/Jayapura"


def test_a_missing_cact_config_file_is_named(no_cact_env, tmp_path):
    no_cact_env.setenv("CACT_CONFIG", str(tmp_path / "nope.env"))
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError, match="nope.env: no such file"):
            get_settings()
    finally:
        get_settings.cache_clear()


def test_a_bad_value_in_the_file_names_the_variable_and_the_file(no_cact_env, tmp_path):
    config = write(tmp_path / "cact.env", "CACT_LANGUAGE=fr\n")
    no_cact_env.setenv("CACT_CONFIG", str(config))
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError) as excinfo:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert f"CACT_LANGUAGE (in {config})" in str(excinfo.value)


def test_an_absolute_data_dir_in_the_file_stays_and_empty_backup_dir_is_none(no_cact_env,
                                                                               tmp_path):
    config = write(tmp_path / "conf" / "cact.env",
                   f"CACT_DATA_DIR={tmp_path / 'abs'}\nCACT_BACKUP_DIR=\n")
    no_cact_env.setenv("CACT_CONFIG", str(config))
    settings = Settings()
    assert settings.data_dir == tmp_path / "abs" and settings.backup_dir is None


def test_relative_data_dir_becomes_absolute(no_cact_env, tmp_path):
    settings = Settings(data_dir="var")
    assert settings.data_dir == tmp_path / "cwd" / "var"


def test_processes_creating_the_key_together_agree_on_one(tmp_path):
    """Eight processes race to create the key of an empty database: one key, whole, for all."""
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from app.settings import load_or_create_secret;"
            "print(load_or_create_secret(Path(sys.argv[1])))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "data")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    results = [proc.communicate(timeout=60) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err for _, err in results]
    keys = {out.strip() for out, _ in results}
    assert len(keys) == 1 and len(keys.pop()) >= 32
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["secret_key"]
