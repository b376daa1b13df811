#!/usr/bin/env bash
# Set up everything gis_ioc needs on a Debian machine, then serve or test.
#
#   ./bootstrap.sh serve [gis-ioc serve options]   set up, load Hưng Yên, run the server on 127.0.0.1
#   ./bootstrap.sh test  [pytest options]          set up, run the whole test suite
#   ./bootstrap.sh setup                           set up only (packages, venv, database, data)
#
# Idempotent: a second run reuses the packages, the virtual environment, the cluster and the data.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT=$(pwd)
VENV=${GIS_IOC_VENV:-$ROOT/.venv}
# python3-qgis: Debian's QGIS (3.22) for the tests that drive the real desktop client headless (PyQGIS).
# fonts-liberation: Liberation Serif, metric-compatible with Times New Roman, for the state-format PDFs.
# mosquitto: the MQTT broker that gis-ioc runs itself (gis-ioc broker start), like the embedded PostGIS.
DEBIAN_PACKAGES=(postgresql-15-postgis-3 postgresql-15-postgis-3-scripts gdal-bin
                 chromium poppler-utils fonts-dejavu-core fonts-liberation python3-qgis mosquitto)

say() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

debian_packages() {
    local missing=() pkg
    for pkg in "${DEBIAN_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} by hand (Debian 12 packages)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    say "Installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

python_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; }

find_python() {
    local candidate
    for candidate in "${GIS_IOC_PYTHON:-}" python3.12 python3.13 python3; do
        [ -n "$candidate" ] || continue
        candidate=$(command -v "$candidate" 2>/dev/null) || continue
        python_ok "$candidate" && { echo "$candidate"; return 0; }
    done
    if command -v pyenv >/dev/null; then
        for candidate in "$(pyenv root)"/versions/3.12*/bin/python3 "$(pyenv root)"/versions/3.13*/bin/python3; do
            [ -x "$candidate" ] && python_ok "$candidate" && { echo "$candidate"; return 0; }
        done
    fi
    return 1
}

python_env() {
    if [ ! -x "$VENV/bin/python" ] || ! python_ok "$VENV/bin/python"; then
        local python
        python=$(find_python) || die "Python >= 3.12 not found (pygeoapi >= 0.22 needs it); set GIS_IOC_PYTHON"
        say "Creating the virtual environment $VENV with $python"
        rm -rf "$VENV"
        "$python" -m venv "$VENV"
        "$VENV/bin/python" -m pip install -q --upgrade pip
    fi
    local stamp="$VENV/.gis_ioc-installed" want
    want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-64)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "Installing gis_ioc and its pinned dependencies (constraints.txt)"
        "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[dev]"
        echo "$want" > "$stamp"
    fi
}

setup() {
    debian_packages
    python_env
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    serve)
        setup
        "$VENV/bin/gis-ioc" setup
        "$VENV/bin/gis-ioc" broker start  # the sensors' MQTT broker (already running: its files are reloaded)
        exec "$VENV/bin/gis-ioc" serve "$@"
        ;;
    test)
        setup
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    setup)
        setup
        "$VENV/bin/gis-ioc" setup
        ;;
    *)
        sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
