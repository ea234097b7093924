#!/usr/bin/env bash
# mnist-edge Raspberry Pi installer. Run it from the unpacked bundle:
#
#   ./install.sh [--prefix DIR] [--requirements FILE] [--enable-service]
#
# 1. checks the sha256 of every file against manifest.json (names any file that differs),
# 2. copies the bundle into a NEW folder PREFIX/releases/<version>-<time>-<pid>,
# 3. creates a venv there and pip-installs the pinned requirements
#    (WHEELS=DIR: offline, from that wheel folder only; PIP_FIND_LINKS/PIP_INDEX_URL are honoured),
# 4. runs the self-test on the bundled golden crops with every bundled model,
# 5. only then points PREFIX/current at the new folder (one atomic rename), so a failed
#    install leaves the previous release running and `current` untouched,
# 6. with ENABLE_SERVICE=1 (or --enable-service) installs, enables and (re)starts mnist-edge.service.
#
# Environment: PREFIX (default ~/mnist-edge), REQUIREMENTS (default requirements-pi.txt),
# WHEELS, PYTHON (default python3), ENABLE_SERVICE, KEEP_RELEASES (default 3), KEEP_FAILED=1.
# Exit status: 0 installed; 1 checksum, pip or self-test failure; 2 usage error.
set -euo pipefail

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

BUNDLE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PREFIX=${PREFIX:-$HOME/mnist-edge}
REQUIREMENTS=${REQUIREMENTS:-requirements-pi.txt}
PYTHON=${PYTHON:-python3}
ENABLE_SERVICE=${ENABLE_SERVICE:-0}
KEEP_RELEASES=${KEEP_RELEASES:-3}
WHEELS=${WHEELS:-}

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX=$2; shift 2 ;;
        --requirements) REQUIREMENTS=$2; shift 2 ;;
        --enable-service) ENABLE_SERVICE=1; shift ;;
        -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) printf 'install.sh: error: unknown option %s (see --help)\n' "$1" >&2; exit 2 ;;
    esac
done

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found; install it (sudo apt install python3 python3-venv) or set PYTHON=/path/to/python3.11"
[ -f "$BUNDLE/manifest.json" ] || die "$BUNDLE/manifest.json missing; this is not an unpacked mnist-edge-pi bundle"
[ -f "$BUNDLE/$REQUIREMENTS" ] || die "$BUNDLE/$REQUIREMENTS missing; choose requirements-pi.txt or requirements-pi-tflite-runtime.txt"

# --- 1. checksums -----------------------------------------------------------------------------
VERSION=$("$PYTHON" - "$BUNDLE" <<'PY'
import hashlib, json, os, sys
root = sys.argv[1]
m = json.load(open(os.path.join(root, "manifest.json")))
bad = []
for rel, want in sorted(m["files"].items()):
    p = os.path.join(root, rel)
    if not os.path.isfile(p):
        bad.append(f"{rel}: missing from the bundle")
        continue
    h = hashlib.sha256(open(p, "rb").read()).hexdigest()
    if h != want["sha256"]:
        bad.append(f"{rel}: sha256 {h[:12]}... differs from the manifest's {want['sha256'][:12]}...")
for d, dirs, files in os.walk(os.path.join(root, "edge")):
    dirs[:] = [x for x in dirs if x != "__pycache__"]
    for f in files:
        rel = os.path.relpath(os.path.join(d, f), root)
        if rel not in m["files"]:
            bad.append(f"{rel}: not listed in manifest.json (unexpected code in the bundle)")
for b in bad:
    print(f"install.sh: checksum FAILED {b}", file=sys.stderr)
if bad:
    print("install.sh: error: the bundle was modified or damaged; rebuild it (make bundle) and copy it again", file=sys.stderr)
    sys.exit(1)
print(m["version"])
PY
) || exit 1
say "checksums OK ($(grep -c '"sha256"' "$BUNDLE/manifest.json") files), mnist-edge-pi $VERSION"

# --- 2. new release folder ----------------------------------------------------------------------
mkdir -p "$PREFIX/releases"
PREFIX=$(cd "$PREFIX" && pwd)
NAME="$VERSION-$(date +%Y%m%d-%H%M%S)-$$"
NEW="$PREFIX/releases/$NAME"
OLD=$(readlink "$PREFIX/current" 2>/dev/null || true)
OK=0
cleanup() {
    if [ "$OK" != 1 ]; then
        if [ "${KEEP_FAILED:-0}" = 1 ]; then say "kept the failed release in $NEW"; else rm -rf "$NEW"; fi
        printf 'install.sh: FAILED; %s\n' "$( [ -n "$OLD" ] && echo "$PREFIX/current still points to $OLD" || echo "nothing was installed")" >&2
    fi
}
trap cleanup EXIT
mkdir "$NEW"
for f in edge artifacts golden manifest.json install.sh mnist-edge.service README-pi.md requirements-pi.txt requirements-pi-tflite-runtime.txt; do
    cp -a "$BUNDLE/$f" "$NEW/"
done
find "$NEW/edge" -name __pycache__ -prune -exec rm -rf {} +

# --- 3. venv + requirements ---------------------------------------------------------------------
say "creating $NEW/venv with $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
"$PYTHON" -m venv "$NEW/venv" || die "$PYTHON -m venv failed; install python3-venv (sudo apt install python3-venv)"
PIP_ARGS=(--disable-pip-version-check --no-input --quiet)
if [ -n "$WHEELS" ]; then
    [ -d "$WHEELS" ] || die "WHEELS=$WHEELS is not a folder of wheels"
    PIP_ARGS+=(--no-index --find-links "$WHEELS")
    say "installing $REQUIREMENTS offline from $WHEELS"
else
    say "installing $REQUIREMENTS${PIP_FIND_LINKS:+ (also from $PIP_FIND_LINKS)}"
fi
"$NEW/venv/bin/python" -m pip install "${PIP_ARGS[@]}" -r "$NEW/$REQUIREMENTS" \
    || die "pip could not install $REQUIREMENTS (see above); check the network, or set WHEELS=DIR to a folder holding the wheels"

# --- 4. self-test ---------------------------------------------------------------------------------
FAILED=0
for model in "$NEW"/artifacts/model_int8.tflite "$NEW"/artifacts/model_float32.tflite; do
    [ -f "$model" ] || continue
    (cd "$NEW" && "$NEW/venv/bin/python" -m edge.selftest --model "artifacts/$(basename "$model")" --crops golden) || FAILED=1
done
if [ "$FAILED" != 0 ]; then
    die "self-test FAILED: a golden crop was misread (see above); not switching $PREFIX/current"
fi
say "self-test PASS"

# --- 5. switch `current` atomically -------------------------------------------------------------
ln -sfn "releases/$NAME" "$PREFIX/.current.$$"
mv -fT "$PREFIX/.current.$$" "$PREFIX/current"
OK=1
say "installed: $PREFIX/current -> releases/$NAME${OLD:+ (was $OLD)}"

# keep the newest KEEP_RELEASES releases (the current one is always kept)
ls -1dt "$PREFIX"/releases/*/ 2>/dev/null | tail -n +"$((KEEP_RELEASES + 1))" | while read -r old; do
    old=${old%/}
    [ "$old" = "$NEW" ] || rm -rf "$old"
done

# --- 6. the systemd service ---------------------------------------------------------------------
if [ "$ENABLE_SERVICE" = 1 ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo -n"
    unit=$(mktemp)
    sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@USER@|$(id -un)|g" "$NEW/mnist-edge.service" >"$unit"
    $SUDO install -m 644 "$unit" /etc/systemd/system/mnist-edge.service \
        || { rm -f "$unit"; die "installing the service needs root: run as root or give $(id -un) passwordless sudo"; }
    rm -f "$unit"
    $SUDO systemctl daemon-reload
    $SUDO systemctl enable mnist-edge.service
    $SUDO systemctl restart mnist-edge.service
    say "service mnist-edge enabled and started: journalctl -u mnist-edge -f"
elif command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mnist-edge.service 2>/dev/null; then
    say "mnist-edge.service is running the previous release; restart it: sudo systemctl restart mnist-edge"
fi
