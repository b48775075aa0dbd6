"""One configuration from anywhere, and a secret key that can never split (issue #12, 2 and 3).

The database records its key's fingerprint; the server and every command refuse a missing or
different key with exit 78 and a message naming the key file and the fix. Real SQLite files,
the real PostgreSQL server and the real `cact` command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from app.ops import keycheck
from app.ops.state import get_value
from app.settings import Settings, SettingsError
from tests.conftest import FAST_ARGON2
from tests.factories import make_open_session
from tests.integration.test_demo_and_cli import cact

KEY_A = "a" * 40
KEY_B = "b" * 40


def key_settings(database, data_dir: Path, secret_key: str = "") -> Settings:
    return Settings(data_dir=data_dir, database_url=database.url, secret_key=secret_key,
                    **FAST_ARGON2)


def add_participants(database, clock, secret: str) -> None:
    with database.transaction() as db:
        make_open_session(db, clock, secret=secret, participants=2)


# -- keycheck.ensure on both backends ------------------------------------------------------------


def test_an_empty_database_gets_a_new_key_and_records_its_fingerprint(database, tmp_path, clock):
    settings = key_settings(database, tmp_path / "data")
    secret = keycheck.ensure(database, settings, now=clock.now())
    assert (tmp_path / "data" / "secret_key").read_text().strip() == secret
    with database.transaction(write=False) as db:
        assert get_value(db, "secret_fingerprint")["fingerprint"] == keycheck.fingerprint(secret)
        assert keycheck.problem(db, secret=secret) is None
        assert "not the key this database was made with" in keycheck.problem(db, secret=KEY_B)
    assert keycheck.ensure(database, settings, now=clock.now()) == secret  # stable


def test_a_missing_key_file_is_refused_and_never_regenerated(database, tmp_path, clock):
    settings = key_settings(database, tmp_path / "data")
    keycheck.ensure(database, settings, now=clock.now())
    key_file = tmp_path / "data" / "secret_key"
    key_file.unlink()
    with pytest.raises(keycheck.KeyMismatch) as excinfo:
        keycheck.ensure(database, settings, now=clock.now())
    message = str(excinfo.value)
    assert str(key_file) in message and "CACT_SECRET_KEY" in message
    assert "cact restore" in message and "backup" in message
    assert not key_file.exists()


def test_a_different_key_is_refused_whether_file_or_environment(database, tmp_path, clock):
    keycheck.ensure(database, key_settings(database, tmp_path / "a", KEY_A), now=clock.now())
    with pytest.raises(keycheck.KeyMismatch, match="CACT_SECRET_KEY .*not the key"):
        keycheck.ensure(database, key_settings(database, tmp_path / "a", KEY_B), now=clock.now())
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "secret_key").write_text(KEY_B + "\n")
    with pytest.raises(keycheck.KeyMismatch) as excinfo:
        keycheck.ensure(database, key_settings(database, tmp_path / "b"), now=clock.now())
    assert str(tmp_path / "b" / "secret_key") in str(excinfo.value)
    assert keycheck.fingerprint(KEY_A) in str(excinfo.value)


def test_an_existing_database_adopts_the_key_present(database, tmp_path, clock):
    """A database from before this check (data, no fingerprint) keeps working with its key."""
    add_participants(database, clock, KEY_A)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "secret_key").write_text(KEY_A + "\n")
    settings = key_settings(database, tmp_path / "data")
    assert keycheck.ensure(database, settings, now=clock.now()) == KEY_A
    with database.transaction(write=False) as db:
        assert get_value(db, "secret_fingerprint")["fingerprint"] == keycheck.fingerprint(KEY_A)


def test_data_without_fingerprint_or_key_is_refused(database, tmp_path, clock):
    add_participants(database, clock, KEY_A)
    settings = key_settings(database, tmp_path / "data")
    with pytest.raises(keycheck.KeyMismatch, match="already has accounts or participants"):
        keycheck.ensure(database, settings, now=clock.now())
    assert not (tmp_path / "data" / "secret_key").exists()
    with database.transaction(write=False) as db:
        assert get_value(db, "secret_fingerprint") is None


def test_create_app_refuses_the_wrong_key(database, tmp_path, clock):
    from app.main import create_app

    create_app(key_settings(database, tmp_path, KEY_A), clock=clock, database=database)
    with pytest.raises(SettingsError, match="wrong secret key"):
        create_app(key_settings(database, tmp_path, KEY_B), clock=clock, database=database)


# -- the real command ----------------------------------------------------------------------------


def no_key_env(data_dir: Path) -> dict:
    """cact() from test_demo_and_cli with the key from the data directory, not the environment."""
    return {"CACT_SECRET_KEY": "", "CACT_DATA_DIR": str(data_dir)}


def test_a_database_with_participants_refuses_to_start_without_its_key(database, tmp_path):
    data_dir = tmp_path / "data"
    env = no_key_env(data_dir)
    made = cact(database.url, "demo", extra_env=env)
    assert made.returncode == 0, made.stderr
    key_file = data_dir / "secret_key"
    assert key_file.exists()
    tokens = cact(database.url, "session", "tokens", "DEMO", extra_env=env)
    assert tokens.returncode == 0, tokens.stderr
    moved = key_file.rename(tmp_path / "elsewhere")
    for args in (["serve", "--port", "1"], ["session", "tokens", "DEMO"], ["user", "list"]):
        refused = cact(database.url, *args, extra_env=env)
        assert refused.returncode == 78, (args, refused.stderr)
        assert str(key_file) in refused.stderr and "CACT_SECRET_KEY" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert not key_file.exists()  # never a second key
    other = tmp_path / "other_key"
    other.write_text(KEY_B + "\n")
    wrong = cact(database.url, "session", "tokens", "DEMO",
                 extra_env={**env, "CACT_SECRET_KEY": KEY_B})
    assert wrong.returncode == 78 and "wrong secret key" in wrong.stderr
    moved.rename(key_file)  # restored from the backup: everything works again
    again = cact(database.url, "session", "tokens", "DEMO", extra_env=env)
    assert again.returncode == 0 and again.stdout == tokens.stdout


def config_show(cwd: Path, env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("CACT_")}
    return subprocess.run([sys.executable, "-m", "app.cli", "config", "show"], cwd=cwd,
                          env={**clean, "PYTHONPATH": str(Path.cwd()), **env},
                          capture_output=True, text=True, timeout=60)


def test_config_show_prints_the_same_data_dir_from_two_directories(tmp_path):
    config = tmp_path / "etc" / "cact.env"
    config.parent.mkdir()
    config.write_text("CACT_DATA_DIR=../lib/cact\n"
                      "CACT_DATABASE_URL=postgresql://cact:hunter2-secret@db.lab/cact\n"
                      "CACT_LANGUAGE=en\nCACT_LANGAUGE=id\n")
    one, two = tmp_path / "one", tmp_path / "two" / "deeper"
    one.mkdir()
    two.mkdir(parents=True)
    env = {"CACT_CONFIG": str(config), "CACT_TIMEZONE": "Asia/Makassar",
           "CACT_SECRET_KEY": "very-secret-" + "z" * 30}
    first, second = config_show(one, env), config_show(two, env)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    lines = {line.split(" = ")[0]: line for line in first.stdout.splitlines()}
    assert f"config file: {config} (CACT_CONFIG)" in first.stdout
    assert lines["data_dir"] == f"data_dir = {tmp_path / 'lib' / 'cact'}    [{config}]"
    assert lines["language"].endswith(f"[{config}]") and "= en" in lines["language"]
    assert lines["timezone"] == "timezone = Asia/Makassar    [environment]"
    assert lines["session_idle_minutes"] == "session_idle_minutes = 30    [default]"
    assert "hunter2" not in first.stdout and "very-secret" not in first.stdout
    assert "postgresql+psycopg://cact:***@db.lab/cact" in lines["database_url"]
    fingerprint = keycheck.fingerprint("very-secret-" + "z" * 30)
    assert lines["secret_key"] == (
        f"secret_key = ******** (fingerprint {fingerprint})    [environment]")
    assert "CACT_LANGAUGE" in first.stderr  # a misspelt name is pointed out


def test_config_show_names_the_generated_key_file(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "secret_key").write_text(KEY_A + "\n")
    shown = config_show(tmp_path, {"CACT_DATA_DIR": str(data_dir)})
    assert shown.returncode == 0, shown.stderr
    assert "config file: none" in shown.stdout
    assert (f"secret_key = ******** (fingerprint {keycheck.fingerprint(KEY_A)})    "
            f"[generated file {data_dir / 'secret_key'}]") in shown.stdout
    assert KEY_A not in shown.stdout


def run_as_other_user(tmp_path: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    """`cact ARGS` as a user who may not read the root-owned key file: nobody when the tests
    run as root, else this user with the file made unreadable (chmod 000)."""
    as_nobody = (["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
                 if os.geteuid() == 0 else [])
    return subprocess.run([*as_nobody, sys.executable, "-m", "app.cli", *args], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(Path.cwd()), **env},
                          capture_output=True, text=True, timeout=60)


def test_an_unreadable_key_file_is_one_clear_line(tmp_path, sqlite_template):
    # Outside pytest's private (0700) temporary folder, so that nobody can reach the files.
    base = Path(tempfile.mkdtemp(prefix="cact-unreadable-", dir="/tmp"))
    data_dir = base / "data"
    data_dir.mkdir(parents=True)
    try:
        shutil.copyfile(sqlite_template, data_dir / "cact.sqlite3")
        key_file = data_dir / "secret_key"
        key_file.write_text(KEY_A + "\n")
        key_file.chmod(0o000 if os.geteuid() != 0 else 0o600)  # root-owned, only root reads
        for path in (base, data_dir, data_dir / "cact.sqlite3"):
            path.chmod(0o777 if path.is_dir() else 0o666)
        env = {"CACT_DATA_DIR": str(data_dir), "CACT_DATABASE_URL": "", "CACT_SECRET_KEY": ""}
        for args in (["user", "list"], ["serve", "--port", "1"]):
            result = run_as_other_user(base, *args, env=env)
            assert result.returncode == 78, (args, result.stdout, result.stderr)
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
            assert f"cannot read the secret key file {key_file} as user" in lines[0]
            assert "sudo -u cact cact" in lines[0]
        assert key_file.read_text().strip() == KEY_A  # untouched
        config = base / "cact.env"
        config.write_text(f"CACT_DATA_DIR={data_dir}\n")
        config.chmod(0o000 if os.geteuid() != 0 else 0o600)
        shown = run_as_other_user(base, "config", "show", env={"CACT_CONFIG": str(config)})
        assert shown.returncode == 78 and "Traceback" not in shown.stderr, shown.stderr
        assert len(shown.stderr.strip().splitlines()) == 1
        assert f"cannot read the configuration file {config} as user" in shown.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_root_is_warned_about_another_users_data_directory(tmp_path, sqlite_template):
    from app.cli.common import root_warning

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if os.geteuid() != 0:
        # Not root: the directory belongs to this (non-root) user, as it would to `cact`.
        assert root_warning(data_dir) is None
        message = root_warning(data_dir, euid=0)
        assert message and "sudo -u " in message and str(data_dir) in message
        return
    assert root_warning(data_dir) is None  # root's own directory: nothing to say
    shutil.copyfile(sqlite_template, data_dir / "cact.sqlite3")
    (data_dir / "secret_key").write_text(KEY_A + "\n")
    os.chown(data_dir, 65534, 65534)
    result = cact("", "user", "list",
                  extra_env={"CACT_DATA_DIR": str(data_dir), "CACT_SECRET_KEY": ""})
    assert result.returncode == 0, result.stderr  # a warning, not a refusal
    assert f"the data directory {data_dir} belongs to nobody" in result.stderr
    assert "sudo -u nobody cact" in result.stderr
