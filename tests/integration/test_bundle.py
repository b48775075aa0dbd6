"""The offline bundle (issue #12): `make bundle`, then install.sh where pip reaches no index.

The bundle is built once per module for the running Python only (BUNDLE_PYTHONS), the way CI
can afford; `make bundle` without it builds for 3.11, 3.12 and 3.13. Every install here runs
with pip's configuration of this machine switched off (its local mirrors and find-links) and
its index pointed at a closed port, from a folder outside the checkout with PYTHONPATH unset, so
the installed server can only work from what the bundle carries.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import time
import urllib.parse
import urllib.request
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from app import __version__, paths
from tests.conftest import IN_CI, csrf_from, unavailable
from tests.e2e.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
DEAD_INDEX = "http://127.0.0.1:9/simple"  # the discard port: connections are refused


def offline_env(home: Path, **extra: str) -> dict[str, str]:
    """This machine's environment minus everything that could reach a package or the checkout."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PIP_", "CACT_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PIP_CONFIG_FILE="/dev/null", PIP_INDEX_URL=DEAD_INDEX, PIP_RETRIES="0",
               PIP_TIMEOUT="3", HOME=str(home), **extra)
    return env


def run(args: list, *, env: dict, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make bundle` for this Python into a temporary dist/, unpacked; returns its folder."""
    dist = tmp_path_factory.mktemp("dist")
    started = time.monotonic()
    made = subprocess.run(
        ["make", "--no-print-directory", "bundle", f"DIST={dist}", f"BUNDLE_PYTHONS={THIS_PYTHON}",
         f"VENV={sys.prefix}"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    print(f"make bundle ({THIS_PYTHON}): {time.monotonic() - started:.1f} s")
    archive = dist / f"cact-{__version__}-bundle.tar.gz"
    assert archive.is_file(), sorted(p.name for p in dist.iterdir())
    unpacked = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    return unpacked / f"cact-{__version__}"


def test_setup_py_packages_every_data_folder_app_paths_looks_for():
    text = (REPO / "setup.py").read_text(encoding="utf-8")
    listed = re.search(r"DATA_FOLDERS = \(([^)]*)\)", text)
    assert listed, "setup.py must define DATA_FOLDERS"
    assert tuple(re.findall(r'"([^"]+)"', listed.group(1))) == paths.DATA_FOLDERS


def test_the_checkout_is_used_when_nothing_is_packaged():
    # Tests and `make run` use an editable install: the data comes from the repository itself.
    assert not paths.PACKAGED_DATA_DIR.exists()
    assert paths.MIGRATIONS_DIR == REPO / "migrations"
    assert paths.resource_dir("frontend") == REPO / "frontend"
    with pytest.raises(ValueError, match="unknown data folder 'static'"):
        paths.resource_dir("static")


def test_the_bundle_holds_the_installer_a_complete_wheel_and_its_dependencies(bundle):
    assert os.access(bundle / "install.sh", os.X_OK)
    for name in ("deploy/cact.service", "deploy/cact.env.example", "deploy/nginx-cact.conf",
                 "docs/operations.md", "SHA256SUMS", "LICENSE"):
        assert (bundle / name).is_file(), name
    assert f"pythons={THIS_PYTHON}" in (bundle / "BUNDLE").read_text()
    wheels = {p.name for p in (bundle / "wheelhouse").iterdir()}
    (wheel,) = [w for w in wheels if w.startswith(f"cact-{__version__}-")]
    tag = f"cp{THIS_PYTHON.replace('.', '')}"
    for dependency in ("fastapi-", "uvicorn-", "alembic-", "psycopg_binary-", "uvloop-"):
        assert any(w.startswith(dependency) for w in wheels), dependency
    assert any(w.startswith("pydantic_core-") and f"-{tag}-" in w for w in wheels)
    # Pinned to what this environment runs (the versions these tests pass with).
    for dist_name, prefix in (("fastapi", "fastapi"), ("SQLAlchemy", "sqlalchemy"),
                              ("numpy", "numpy"), ("pydantic-core", "pydantic_core")):
        assert f"{prefix}-{metadata.version(dist_name)}-" in " ".join(sorted(wheels)), dist_name
    with zipfile.ZipFile(bundle / "wheelhouse" / wheel) as zf:
        names = set(zf.namelist())
    for packaged in ("app/_data/migrations/env.py", "app/_data/frontend/templates/auth/login.html",
                     "app/_data/frontend/static/css/app.css",
                     "app/_data/frontend/locales/id.json",
                     "app/_data/itembank/samples/cact-setengah-hari.blueprint.yaml",
                     "app/_data/docs/itembank-format.md"):
        assert packaged in names, packaged
    versions = {n for n in names if n.startswith("app/_data/migrations/versions/")
                and n.endswith(".py")}
    assert len(versions) == len(list((REPO / "migrations" / "versions").glob("*.py")))
    assert not [n for n in names if "__pycache__" in n or n.startswith("tests/")]


def test_offline_install_with_prefix_serves_the_demo(bundle, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = offline_env(home)
    prefix = tmp_path / "cact"
    started = time.monotonic()
    installed = run(["sh", bundle / "install.sh", "--prefix", prefix], env=env, cwd=tmp_path)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    print(f"offline install: {time.monotonic() - started:.1f} s")
    assert f"{prefix}/bin/cact" in installed.stdout
    # The same pip, without install.sh's --no-index/--find-links, really reaches nothing here.
    reach = run([prefix / "bin/python", "-m", "pip", "download", "--no-deps", "--dest",
                 tmp_path / "probe", "tzdata"], env=env, cwd=tmp_path, timeout=120)
    assert reach.returncode != 0, reach.stdout

    # A plain install: the package and its data live in the prefix, not in this checkout.
    where = run([prefix / "bin/python", "-c",
                 "import app, app.db, app.web; print(app.__file__); print(app.db.MIGRATIONS_DIR);"
                 " print(app.web.FRONTEND_DIR)"], env=env, cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    for line in where.stdout.split():
        assert line.startswith(str(prefix / "lib")), line
        assert str(REPO) not in line
    assert not list(prefix.glob("lib/python*/site-packages/__editable__*"))

    cact = prefix / "bin" / "cact"
    data = tmp_path / "data"
    env_data = offline_env(home, CACT_DATA_DIR=str(data))
    for _ in range(2):  # the second run finds the schema at head and changes nothing
        upgraded = run([cact, "db", "upgrade"], env=env_data, cwd=tmp_path)
        assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    demo = run([cact, "demo"], env=env_data, cwd=tmp_path)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "demo-admin-2026" in demo.stdout

    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen([str(cact), "serve", "--port", str(port)], env=env_data,
                              cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert server.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.2)
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        with opener.open(base + "/login", timeout=10) as response:
            login_page = response.read().decode()
        assert 'data-testid="login-form"' in login_page
        with opener.open(base + "/static/css/app.css", timeout=10) as response:
            assert response.read() == (REPO / "frontend/static/css/app.css").read_bytes()
        # The demo admin signs in and sees the demo session: templates, data and secret work.
        form = urllib.parse.urlencode({"username": "admin", "password": "demo-admin-2026",
                                       "csrf_token": csrf_from(login_page)}).encode()
        with opener.open(base + "/login", data=form, timeout=30) as response:
            assert response.status == 200
            assert not response.url.endswith("/login"), response.url
        with opener.open(base + "/admin/sessions", timeout=10) as response:
            assert "DEMO" in response.read().decode()
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def staged(bundle, tmp_path_factory) -> tuple[Path, str, list]:
    """A server install under a staging root (the way a lab server gets it, minus the user,
    chown and systemctl): (root, its output, the command to run it again)."""
    work = tmp_path_factory.mktemp("staged")
    root = work / "root"
    enabled = root / "etc/nginx/sites-enabled"
    enabled.mkdir(parents=True)
    (enabled / "default").symlink_to("/etc/nginx/sites-available/default")
    args = ["sh", bundle / "install.sh", "--root", root, "--backup-dir", "/srv/cact-backups"]
    installed = run(args, env=offline_env(work), cwd=work)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return root, installed.stdout, args


def test_server_install_staged_under_root(bundle, staged):
    root, output, _ = staged
    enabled = root / "etc/nginx/sites-enabled"

    assert (root / "opt/cact/bin/cact").is_file()
    assert os.readlink(root / "usr/local/bin/cact") == str(root / "opt/cact/bin/cact")
    assert (root / "opt/cact/share/doc/cact/operations.md").is_file()
    for folder in ("var/lib/cact", "srv/cact-backups"):
        assert (root / folder).stat().st_mode & 0o777 == 0o750, folder
    config = root / "etc/cact/cact.env"
    assert config.stat().st_mode & 0o777 == 0o640
    lines = config.read_text().splitlines()
    assert "CACT_DATA_DIR=/var/lib/cact" in lines
    assert "CACT_BACKUP_DIR=/srv/cact-backups" in lines

    unit = (root / "etc/systemd/system/cact.service").read_text()
    assert "EnvironmentFile=/etc/cact/cact.env" in unit
    assert "RestartPreventExitStatus=78" in unit
    assert "ExecStartPre" not in unit
    assert not [line for line in unit.splitlines() if line.startswith("Exec") and "db" in line]
    assert "ExecStart=/opt/cact/bin/cact serve " in unit
    assert "ReadWritePaths=/var/lib/cact -/srv/cact-backups" in unit
    assert "User=cact" in unit

    site = root / "etc/nginx/sites-available/cact"
    assert site.read_bytes() == (bundle / "deploy/nginx-cact.conf").read_bytes()
    assert os.readlink(enabled / "cact") == "../sites-available/cact"
    assert not (enabled / "default").is_symlink()

    # The database was created and migrated to the head of this release.
    with sqlite3.connect(root / "var/lib/cact/cact.sqlite3") as conn:
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert revision == head_revision()
    # Created by the installer's commands under umask 0027: nothing for other users.
    for created in (root / "var/lib/cact").iterdir():
        assert not created.stat().st_mode & 0o007, created
    for step in ("user create admin", "tls init", "systemctl enable --now cact"):
        assert step in output, step
    assert "nothing to back up" in output


# The real (root) install, confined to a private mount namespace: /etc is a copy, /opt, /var/lib
# and /usr/local/bin are empty folders of the test. useradd, chown and runuser really run; the
# machine's own files are never touched. Runs twice: install, then an upgrade, which keeps the
# local configuration and backs the database up (slice C's `cact backup --out`) before migrating.
REAL_INSTALL = r"""
set -eu
T=$1
BUNDLE=$2
cp -a /etc "$T/etc"
mkdir -p "$T/etc/nginx/sites-enabled" "$T/opt" "$T/varlib" "$T/localbin"
ln -sfn /etc/nginx/sites-available/default "$T/etc/nginx/sites-enabled/default"
mount --bind "$T/etc" /etc
mount --bind "$T/opt" /opt
mount --bind "$T/varlib" /var/lib
mount --bind "$T/localbin" /usr/local/bin
cd /
sh "$BUNDLE/install.sh" > "$T/first.log" 2>&1 || { cat "$T/first.log"; exit 11; }
echo "CACT_LANGUAGE=en" >> /etc/cact/cact.env
sh "$BUNDLE/install.sh" > "$T/again.log" 2>&1 || { cat "$T/again.log"; exit 12; }
runuser -u cact -- /usr/local/bin/cact db status > "$T/status.log" 2>&1 \
    || { cat "$T/status.log"; exit 13; }
# The site serves HTTPS from /etc/cact/tls: the installer made a first certificate, so Debian's
# nginx accepts the configuration as installed (it would refuse to start or reload without).
if command -v nginx >/dev/null; then
    mkdir -p /var/lib/nginx
    nginx -t > "$T/nginx-t.log" 2>&1 || { cat "$T/nginx-t.log"; exit 15; }
fi
# Start the server the way the unit says (User, WorkingDirectory, EnvironmentFile, Environment,
# ExecStart), on a free port, and wait for /healthz.
UNIT=/etc/systemd/system/cact.service
EXEC=$(sed -n 's/^ExecStart=//p' $UNIT | sed "s/--port 8000/--port $3/")
(
    cd "$(sed -n 's/^WorkingDirectory=//p' $UNIT)"
    while IFS= read -r line; do case $line in CACT_*=*) export "$line" ;; esac; done \
        < "$(sed -n 's/^EnvironmentFile=//p' $UNIT)"
    export "$(sed -n 's/^Environment=//p' $UNIT)"
    user=$(sed -n 's/^User=//p' $UNIT)
    umask "$(sed -n 's/^UMask=//p' $UNIT)"
    exec setpriv --reuid "$user" --regid "$user" --init-groups -- $EXEC
) > "$T/serve.log" 2>&1 &
server=$!
healthy=0
for _ in $(seq 1 150); do
    if /opt/cact/bin/python -c "import urllib.request as u
u.urlopen('http://127.0.0.1:$3/healthz', timeout=2)" 2>/dev/null; then
        healthy=1
        break
    fi
    sleep 0.2
done
kill "$server"
wait "$server" || true
[ "$healthy" = 1 ] || { cat "$T/serve.log"; exit 14; }
"""


def test_real_install_as_root_in_a_private_mount_namespace(bundle, tmp_path):
    if os.geteuid() != 0:
        unavailable("the real install needs root (useradd, chown, runuser, mount namespaces)")
    before = {path: os.path.exists(path) for path in ("/opt/cact", "/etc/cact", "/var/lib/cact")}
    env = offline_env(tmp_path, PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    done = run(["unshare", "--mount", "--propagation", "private", "sh", "-c", REAL_INSTALL,
                "real-install", tmp_path, bundle, free_port()], env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert before == {path: os.path.exists(path) for path in before}, "the machine was touched"

    users = {line.split(":")[0]: line.split(":") for line in
             (tmp_path / "etc/passwd").read_text().splitlines()}
    _, _, uid, gid, _, home, shell = users["cact"]
    assert (home, shell) == ("/var/lib/cact", "/usr/sbin/nologin")
    uid, gid = int(uid), int(gid)
    assert uid < 1000  # a system user

    data = tmp_path / "varlib/cact"
    assert (data.stat().st_uid, data.stat().st_mode & 0o777) == (uid, 0o750)
    for created in data.iterdir():  # database, secret key, backups: the service's own
        assert created.stat().st_uid == uid, created
    config = tmp_path / "etc/cact/cact.env"
    assert (config.stat().st_uid, config.stat().st_gid) == (0, gid)
    assert config.stat().st_mode & 0o777 == 0o640
    assert config.read_text().endswith("CACT_LANGUAGE=en\n")  # the second run kept it
    assert os.readlink(tmp_path / "localbin/cact") == "/opt/cact/bin/cact"
    assert (tmp_path / "etc/systemd/system/cact.service").is_file()
    assert os.readlink(tmp_path / "etc/nginx/sites-enabled/cact") == "../sites-available/cact"
    assert not (tmp_path / "etc/nginx/sites-enabled/default").is_symlink()

    assert "creating the system user cact" in (tmp_path / "first.log").read_text()
    tls = tmp_path / "etc/cact/tls"
    assert (tls / "server.crt").is_file() and (tls / "server.key").stat().st_mode & 0o777 == 0o600
    assert "made a lab CA and a certificate" in (tmp_path / "first.log").read_text()
    if shutil.which("nginx"):
        assert "test is successful" in (tmp_path / "nginx-t.log").read_text()
    elif IN_CI:
        unavailable("nginx missing: .ci/run installs it")
    again = (tmp_path / "again.log").read_text()
    assert "backing it up" in again and "creating the system user" not in again
    backups = list((data / "backups").iterdir())
    assert backups and all(b.stat().st_uid == uid for b in backups), backups
    with sqlite3.connect(data / "cact.sqlite3") as conn:
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert revision == head_revision()
    assert f"revision: {head_revision()}\n" in (tmp_path / "status.log").read_text()
    assert "Uvicorn running on http://127.0.0.1" in (tmp_path / "serve.log").read_text()


def test_server_install_refuses_clearly(bundle, tmp_path):
    env = offline_env(tmp_path)
    both = run(["sh", bundle / "install.sh", "--prefix", tmp_path / "a", "--root", tmp_path / "b"],
               env=env, cwd=tmp_path)
    assert both.returncode != 0
    assert "exclude each other" in both.stderr
    relative = run(["sh", bundle / "install.sh", "--root", tmp_path / "b", "--backup-dir", "bk"],
                   env=env, cwd=tmp_path)
    assert relative.returncode != 0
    assert "--backup-dir must be an absolute path" in relative.stderr
    wrong_python = run(["sh", bundle / "install.sh", "--prefix", tmp_path / "c", "--python",
                        "python-nonexistent"], env=env, cwd=tmp_path)
    assert wrong_python.returncode != 0
    assert "'python-nonexistent' not found" in wrong_python.stderr
    assert not (tmp_path / "c").exists()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    from app.db import alembic_config

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
