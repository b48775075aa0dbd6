#!/bin/sh
# CACT offline installer: runs from the unpacked bundle that `make bundle` writes
# (dist/cact-<version>-bundle.tar.gz) and needs no package index and no internet.
#
#   ./install.sh --prefix DIR      the program only: a virtual environment in DIR, DIR/bin/cact
#                                  (no root needed)
#   sudo ./install.sh              a lab server: /opt/cact, the `cact` service user,
#                                  /var/lib/cact (0750), /etc/cact/cact.env, the systemd unit,
#                                  the nginx site (if nginx is installed), then backs up an
#                                  existing database and runs `cact db upgrade`
#   ./install.sh --root DIR        the server layout written under DIR instead of / (to inspect
#                                  or test it): no user, no chown, no systemctl
#
# Running it again is safe: it upgrades the program, keeps /etc/cact/cact.env, backs up the
# database before migrating it. docs/operations.md, first section, walks through it.
set -eu
# The program under /opt/cact must be readable by the service user whatever root's umask is;
# the data and configuration get explicit modes below.
umask 022

HERE=$(cd "$(dirname "$0")" && pwd)
PROG=install.sh

say() { printf '%s: %s\n' "$PROG" "$*"; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

usage() {
    cat <<'EOF'
Usage: ./install.sh [--prefix DIR | --root DIR] [--backup-dir DIR] [--python PYTHON]

  (no option, as root)  install a lab server: /opt/cact, user cact, /var/lib/cact,
                        /etc/cact/cact.env, systemd unit, nginx site, database upgrade
  --prefix DIR          install only the program into DIR (DIR/bin/cact); no root needed
  --root DIR            write the server layout under DIR instead of / (staging, tests)
  --backup-dir DIR      backup folder for a new /etc/cact/cact.env and the systemd unit
                        (default /var/lib/cact/backups; better a second disk)
  --python PYTHON       the Python to use (default python3)
EOF
}

PREFIX=""
ROOT=""
STAGING=0
BACKUP_DIR=/var/lib/cact/backups
PY=python3
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see ./install.sh --help)"; }
while [ $# -gt 0 ]; do
    case $1 in
        --prefix) need_value "$@"; PREFIX=$2; shift 2 ;;
        --prefix=*) PREFIX=${1#*=}; shift ;;
        --root) need_value "$@"; ROOT=$2; STAGING=1; shift 2 ;;
        --root=*) ROOT=${1#*=}; STAGING=1; shift ;;
        --backup-dir) need_value "$@"; BACKUP_DIR=$2; shift 2 ;;
        --backup-dir=*) BACKUP_DIR=${1#*=}; shift ;;
        --python) need_value "$@"; PY=$2; shift 2 ;;
        --python=*) PY=${1#*=}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown option '$1'" ;;
    esac
done
[ -n "$PREFIX" ] && [ "$STAGING" = 1 ] && die "--prefix and --root exclude each other: pick one"
case $BACKUP_DIR in /*) ;; *) die "--backup-dir must be an absolute path (got '$BACKUP_DIR')" ;; esac
if [ "$STAGING" = 1 ]; then
    mkdir -p "$ROOT"
    ROOT=$(cd "$ROOT" && pwd)
fi

# -- what this bundle holds, and whether this machine can use it ---------------------------------

[ -d "$HERE/wheelhouse" ] || die "no wheelhouse/ next to install.sh in $HERE: unpack the whole bundle (tar xzf cact-*-bundle.tar.gz) and run install.sh from it"
VERSION=$(sed -n 's/^version=//p' "$HERE/BUNDLE" 2>/dev/null || true)
PYTHONS=$(sed -n 's/^pythons=//p' "$HERE/BUNDLE" 2>/dev/null || true)
[ -n "$VERSION" ] || die "$HERE/BUNDLE is missing or has no version: the bundle is incomplete; copy it again"

if command -v sha256sum >/dev/null 2>&1 && [ -f "$HERE/SHA256SUMS" ]; then
    (cd "$HERE" && sha256sum --check --quiet SHA256SUMS) \
        || die "the bundle is damaged (checksums above do not match): copy cact-$VERSION-bundle.tar.gz again"
fi

machine=$(uname -m)
[ "$machine" = x86_64 ] || die "this bundle has wheels for Linux x86_64 only; this machine is $machine"
command -v "$PY" >/dev/null 2>&1 || die "'$PY' not found: install Python 3 (apt install python3 python3-venv) or pass --python /path/to/python3.X"
pyver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
case " $PYTHONS " in
    *" $pyver "*) ;;
    *) die "$PY is Python $pyver; this bundle has wheels for Python $PYTHONS. Pass --python python3.X for one of them, or rebuild the bundle with: make bundle BUNDLE_PYTHONS=$pyver" ;;
esac
"$PY" -c 'import venv, ensurepip' 2>/dev/null \
    || die "$PY cannot create virtual environments: apt install python3-venv (Debian/Ubuntu; the package is on the installation media)"

# pip must use the bundle and nothing else: no index, no mirror, no config file of this machine.
for var in $(env | sed -n 's/^\(PIP_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$var"; done
PIP_CONFIG_FILE=/dev/null
PIP_NO_INDEX=1
PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_CONFIG_FILE PIP_NO_INDEX PIP_DISABLE_PIP_VERSION_CHECK

# install_program DIR: a virtual environment in DIR with cact $VERSION and its dependencies.
install_program() {
    target=$1
    if [ ! -x "$target/bin/python" ]; then
        say "creating the virtual environment $target"
        "$PY" -m venv "$target" || die "could not create a virtual environment in $target"
    fi
    say "installing cact $VERSION into $target (from $HERE/wheelhouse, no index)"
    "$target/bin/python" -m pip install --quiet --no-index --find-links "$HERE/wheelhouse" \
        --upgrade "cact==$VERSION" \
        || die "pip could not install cact $VERSION from $HERE/wheelhouse (message above)"
    # The same version number may be a newer build (a fixed bundle): always take this one.
    "$target/bin/python" -m pip install --quiet --no-index --find-links "$HERE/wheelhouse" \
        --force-reinstall --no-deps "cact==$VERSION" \
        || die "pip could not reinstall cact $VERSION from $HERE/wheelhouse (message above)"
    mkdir -p "$target/share/doc/cact"
    cp "$HERE/docs/operations.md" "$target/share/doc/cact/operations.md"
    "$target/bin/cact" --help >/dev/null || die "$target/bin/cact does not run (message above)"
}

if [ -n "$PREFIX" ]; then
    install_program "$PREFIX"
    PREFIX=$(cd "$PREFIX" && pwd)
    say "done: $PREFIX/bin/cact (cact $VERSION)"
    cat <<EOF

Next / selanjutnya:
  $PREFIX/bin/cact db upgrade        # creates the database (CACT_DATA_DIR, default ./var)
  $PREFIX/bin/cact demo              # optional: demo data
  $PREFIX/bin/cact serve --port 8000
EOF
    exit 0
fi

# -- a lab server ---------------------------------------------------------------------------------

if [ "$STAGING" = 0 ]; then
    [ "$(id -u)" = 0 ] || die "a server install needs root: sudo ./install.sh (or ./install.sh --prefix DIR for the program only, or --root DIR to stage the layout)"
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet cact 2>/dev/null; then
        die "the cact service is running. Stop it first (never during a session): systemctl stop cact; then run ./install.sh again and start it with: systemctl start cact"
    fi
fi

OPT=$ROOT/opt/cact
ETC=$ROOT/etc/cact
DATA=$ROOT/var/lib/cact
BACKUP=$ROOT$BACKUP_DIR
UNIT=$ROOT/etc/systemd/system/cact.service

if [ "$STAGING" = 0 ]; then
    getent group cact >/dev/null || groupadd --system cact || die "could not create the group cact"
    if ! getent passwd cact >/dev/null; then
        say "creating the system user cact (no login shell, home /var/lib/cact)"
        useradd --system --gid cact --home-dir /var/lib/cact --no-create-home \
            --shell /usr/sbin/nologin --comment "CACT server" cact \
            || die "could not create the user cact"
    fi
fi

install_program "$OPT"
mkdir -p "$ROOT/usr/local/bin"
ln -sfn "$OPT/bin/cact" "$ROOT/usr/local/bin/cact"

# The data directory holds the database and the secret key: the service user only.
mkdir -p "$DATA" "$BACKUP"
chmod 0750 "$DATA" "$BACKUP"
if [ "$STAGING" = 0 ]; then
    chown cact:cact "$DATA" "$BACKUP"
fi

mkdir -p "$ETC"
chmod 0755 "$ETC"
if [ -e "$ETC/cact.env" ]; then
    say "keeping the existing $ETC/cact.env (compare with $HERE/deploy/cact.env.example for new settings)"
else
    say "writing $ETC/cact.env (CACT_DATA_DIR=/var/lib/cact, CACT_BACKUP_DIR=$BACKUP_DIR)"
    sed -e "s#^CACT_DATA_DIR=.*#CACT_DATA_DIR=/var/lib/cact#" \
        -e "s#^CACT_BACKUP_DIR=.*#CACT_BACKUP_DIR=$BACKUP_DIR#" \
        "$HERE/deploy/cact.env.example" > "$ETC/cact.env.part"
    chmod 0640 "$ETC/cact.env.part"
    if [ "$STAGING" = 0 ]; then
        chown root:cact "$ETC/cact.env.part"
    fi
    mv "$ETC/cact.env.part" "$ETC/cact.env"
fi

# The unit belongs to the program (local changes go in `systemctl edit cact`): always replaced.
mkdir -p "$(dirname "$UNIT")"
sed -e "s#/var/lib/cact/backups#$BACKUP_DIR#g" "$HERE/deploy/cact.service" > "$UNIT.part"
chmod 0644 "$UNIT.part"
mv "$UNIT.part" "$UNIT"
say "wrote $UNIT"
if [ "$STAGING" = 0 ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi

NGINX_NOTE=""
if [ -d "$ROOT/etc/nginx" ]; then
    site=$ROOT/etc/nginx/sites-available/cact
    mkdir -p "$ROOT/etc/nginx/sites-available" "$ROOT/etc/nginx/sites-enabled"
    if [ -f "$site" ] && ! cmp -s "$site" "$HERE/deploy/nginx-cact.conf"; then
        cp "$site" "$site.bak"
        say "the previous nginx site is kept as $site.bak"
    fi
    cp "$HERE/deploy/nginx-cact.conf" "$site"
    chmod 0644 "$site"
    ln -sfn ../sites-available/cact "$ROOT/etc/nginx/sites-enabled/cact"
    # Debian's default site also listens on port 80 and would take the lab's requests.
    if [ -e "$ROOT/etc/nginx/sites-enabled/default" ] || [ -L "$ROOT/etc/nginx/sites-enabled/default" ]; then
        rm -f "$ROOT/etc/nginx/sites-enabled/default"
        say "disabled nginx's default site (sites-enabled/default)"
    fi
    say "wrote $site and enabled it"
else
    NGINX_NOTE="  (nginx is not installed: apt install nginx, then run ./install.sh again for the site)"
fi

# -- the database: back up what exists, then migrate ----------------------------------------------

# run_cact ARGS...: a cact command with the service's environment (the same EnvironmentFile as
# the unit), as the service user, from / so no stray ./.env is read.
run_cact() {
    (
        cd /
        umask 0027
        while IFS= read -r line || [ -n "$line" ]; do
            case $line in CACT_*=*) export "$line" ;; esac
        done < "$ETC/cact.env"
        CACT_CONFIG=$ETC/cact.env
        export CACT_CONFIG
        if [ "$STAGING" = 1 ]; then
            CACT_DATA_DIR=$DATA
            CACT_BACKUP_DIR=$BACKUP
            export CACT_DATA_DIR CACT_BACKUP_DIR
            "$@"
        else
            runuser -u cact -- "$@"
        fi
    )
}

# "data" when the configured database has tables, "empty" when it has none (or no file yet).
DB_STATE_PY='
import os
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url
from app.settings import get_settings
settings = get_settings()
url = make_url(settings.database_url)
if settings.is_sqlite and not (url.database and os.path.exists(url.database)
                               and os.path.getsize(url.database) > 0):
    print("empty")
else:
    engine = create_engine(settings.database_url)
    try:
        print("data" if inspect(engine).get_table_names() else "empty")
    finally:
        engine.dispose()
'
db_state=$(run_cact "$OPT/bin/python" -c "$DB_STATE_PY") \
    || die "could not read the database configured in $ETC/cact.env (message above); fix CACT_DATABASE_URL / CACT_DATA_DIR and run ./install.sh again"
if [ "$db_state" = data ]; then
    say "a database exists: backing it up to $BACKUP_DIR before upgrading it"
    run_cact "$OPT/bin/cact" backup --out "$BACKUP" \
        || die "the backup failed, so the database was NOT upgraded (message above). Fix the cause (free space? $BACKUP writable?) and run ./install.sh again"
else
    say "new database: nothing to back up"
fi
say "cact db upgrade"
run_cact "$OPT/bin/cact" db upgrade \
    || die "cact db upgrade failed (message above); the backup is in $BACKUP_DIR"

LAN_IP=$(hostname -I 2>/dev/null | cut -d' ' -f1)
# The nginx site serves HTTPS from /etc/cact/tls: without a certificate nginx would refuse to
# start or reload (at the next boot too). Make a first one for this machine's name and
# address; `cact tls init` again adds the names the lab PCs use (the CA is kept).
TLS_NOTE=""
if [ "$STAGING" = 0 ] && [ -d /etc/nginx ] && [ ! -f /etc/cact/tls/server.crt ]; then
    set -- --host "$(hostname)"
    [ -n "$LAN_IP" ] && set -- "$@" --ip "$LAN_IP"
    if "$OPT/bin/cact" tls init "$@" --dir /etc/cact/tls >/dev/null; then
        say "made a lab CA and a certificate for $(hostname) ${LAN_IP:-} in /etc/cact/tls"
        TLS_NOTE="       (a first certificate for $(hostname) ${LAN_IP:-} is already there)"
    else
        say "could not make a certificate (message above); run cact tls init by hand"
    fi
fi
cat <<EOF

$PROG: cact $VERSION is installed. Next steps / langkah berikutnya:
  1. Admin account / akun admin:
       sudo -u cact cact user create admin --role admin --full-name "Admin BKD"
       sudo -u cact cact user create pengawas1 --role proctor
  2. HTTPS for the lab / HTTPS untuk lab (names and addresses the lab PCs use):
       sudo cact tls init --host cact.lab --ip ${LAN_IP:-192.168.1.10}
$TLS_NOTE
       sudo nginx -t && sudo systemctl reload nginx
$NGINX_NOTE
  3. Start the server now and at every boot / jalankan server:
       sudo systemctl enable --now cact
       curl http://127.0.0.1:8000/healthz
  Settings / pengaturan: /etc/cact/cact.env (then: sudo systemctl restart cact)
  Manual / panduan: /opt/cact/share/doc/cact/operations.md
EOF
