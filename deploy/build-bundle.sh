#!/bin/sh
# Build the offline bundle dist/cact-<version>-bundle.tar.gz (called by `make bundle`):
#   install.sh             the installer (./install.sh --prefix DIR, or as root for a server)
#   wheelhouse/            the cact wheel (migrations, templates, static files, sample banks
#                          inside) and a wheel of every runtime dependency, for Linux x86_64
#                          and each Python in BUNDLE_PYTHONS
#   deploy/                systemd unit, configuration template, nginx site
#   docs/operations.md     the operations manual (installing is its first section)
# This machine needs a package index to build it; the lab server that installs it needs none.
#
# Variables: PYTHON (builds the wheel and runs pip; default python3),
#            DIST (output folder; default dist), BUNDLE_PYTHONS (default "3.11 3.12 3.13"),
#            BUNDLE_PIN (default 1: the dependency versions installed in PYTHON's environment,
#            the ones `make test` ran with; 0: the newest releases pyproject.toml allows).
set -eu

PYTHON=${PYTHON:-python3}
BUNDLE_PYTHONS=${BUNDLE_PYTHONS:-3.11 3.12 3.13}
BUNDLE_PIN=${BUNDLE_PIN:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "${DIST:-dist}"
DIST=$(cd "${DIST:-dist}" && pwd)
cd "$ROOT"

VERSION=$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
NAME="cact-$VERSION"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/$NAME"
mkdir -p "$STAGE/wheelhouse" "$STAGE/deploy" "$STAGE/docs"

started=$(date +%s)
echo "bundle: building the cact $VERSION wheel"
# A stale build/lib could carry files deleted from the checkout into the wheel.
rm -rf build
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$STAGE/wheelhouse" .
WHEEL=$(ls "$STAGE"/wheelhouse/cact-"$VERSION"-*.whl)

# Pin what this environment runs, so the lab server gets the versions the tests passed with.
CONSTRAINTS="$WORK/constraints.txt"
: > "$CONSTRAINTS"
if [ "$BUNDLE_PIN" = 1 ]; then
    "$PYTHON" -m pip freeze --exclude-editable | grep -iv '^cact[=@ ]' > "$CONSTRAINTS" || true
    echo "bundle: pinning the $(grep -c '==' "$CONSTRAINTS" || true) versions installed in $PYTHON's environment (BUNDLE_PIN=0: newest allowed)"
fi

for py in $BUNDLE_PYTHONS; do
    echo "bundle: runtime dependencies for CPython $py on Linux x86_64"
    # Binary wheels only: the lab server has no compiler and no index. manylinux_2_17 runs on
    # glibc >= 2.17, manylinux_2_28 on Debian 12 / Ubuntu 24.04 and later.
    "$PYTHON" -m pip download --quiet --only-binary=:all: \
        --implementation cp --python-version "$py" \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform linux_x86_64 \
        --constraint "$CONSTRAINTS" --dest "$STAGE/wheelhouse" "$WHEEL" \
        || { echo "bundle: no complete set of wheels for Python $py (pip's message above);" \
                  "drop it from BUNDLE_PYTHONS, or take the newest releases with BUNDLE_PIN=0" >&2
             exit 1; }
done

cp deploy/install.sh "$STAGE/install.sh"
chmod 0755 "$STAGE/install.sh"
cp deploy/cact.service deploy/cact.env.example deploy/nginx-cact.conf deploy/README.md "$STAGE/deploy/"
cp docs/operations.md "$STAGE/docs/"
cp README.md LICENSE "$STAGE/"
printf 'version=%s\npythons=%s\n' "$VERSION" "$BUNDLE_PYTHONS" > "$STAGE/BUNDLE"
(cd "$STAGE" && sha256sum install.sh BUNDLE wheelhouse/* deploy/* > SHA256SUMS)

OUT="$DIST/$NAME-bundle.tar.gz"
tar -C "$WORK" -czf "$OUT.part" "$NAME"
mv "$OUT.part" "$OUT"
echo "bundle: $OUT ($(du -h "$OUT" | cut -f1), $(ls "$STAGE/wheelhouse" | wc -l) wheels," \
     "Python $BUNDLE_PYTHONS, $(( $(date +%s) - started )) s)"
