#!/bin/sh
# Install the Debian packages lpq needs that are missing (DESIGN section 5).
# Idempotent: does nothing when everything is present. Runs `apt-get update` only when
# a package cannot be found in the current lists.
set -e
PKGS="build-essential pkg-config zlib1g-dev libzmq3-dev libuv1-dev libsqlite3-dev libjansson-dev
libcriterion-dev libopenblas-dev libprotobuf-c-dev protobuf-c-compiler libonnx-dev
libonnx-testdata dataset-fashion-mnist sqlite3 clang libssl-dev
libclang-rt-14-dev"
missing=""
# The checks of deploy/ (tests/test_deploy*.c) lint YAML and shell and read YAML with libyaml.
PKGS="$PKGS yamllint libyaml-dev shellcheck"
# make check-valgrind runs the suites under valgrind memcheck
PKGS="$PKGS valgrind"
# make install and make deb: man pages from man/*.md (go-md2man), the package (debhelper,
# dpkg-dev, fakeroot), its checks (lintian; systemd-analyze from systemd, man from man-db)
PKGS="$PKGS go-md2man debhelper dpkg-dev fakeroot lintian systemd man-db"
# tools/read_export.py (docs/FORMATS.md's reader of exported weights; tests/test_export_reader.c)
PKGS="$PKGS python3-numpy"
# the benchmarks' peers and exporters (bench/engine/, bench/zoo_check.py): PyTorch, torchvision,
# ONNX for /usr/bin/python3; large, and make test does not need them, so on request only
[ "${LPQ_BENCH_DEPS:-0}" = 1 ] && PKGS="$PKGS python3-torch python3-torchvision python3-onnx"
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# the dashboard (lpq-coordinator --http, coordinator/http/): libh2o's libuv build serves it;
# tests/test_dashboard.c renders it in Debian's chromium
for p in libh2o-dev chromium; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# tests/test_multihost.c makes network namespaces with ip (iproute2); kept apart from the list
# above so that branches extending it merge cleanly
dpkg-query -W -f='${Status}' iproute2 2>/dev/null | grep -q "install ok installed" || missing="$missing iproute2"
# ONNX Runtime for node (tests/test_export.c compares exported models with it; bench/engine):
# npm's registry, --ignore-scripts (the install script would fetch GPU files); never fatal
if command -v npm >/dev/null 2>&1 && [ ! -d "$(dirname "$0")/../bench/engine/node_modules/onnxruntime-node" ]; then
    (cd "$(dirname "$0")/../bench/engine" && npm install --ignore-scripts --no-audit --no-fund >/dev/null 2>&1) ||
        echo "deps: npm install of onnxruntime-node failed; tests/test_export.c will fail without it" >&2
fi
# uPlot, the dashboard's charts, compiled into lpq-coordinator by mk/dashboard.mk (a build
# dependency: the build stops without it), and puppeteer-core, which drives chromium for
# tests/test_dashboard.c and bench/dashboard_load.c; npm's registry, versions pinned by the
# package-lock.json files
top="$(dirname "$0")/.."
for d in coordinator/http/www tests/dashboard; do
    if command -v npm >/dev/null 2>&1 && [ ! -d "$top/$d/node_modules" ]; then
        (cd "$top/$d" && npm ci --ignore-scripts --no-audit --no-fund >/dev/null 2>&1) ||
            echo "deps: npm ci in $d failed (the dashboard needs it: see docs/DASHBOARD.md)" >&2
    fi
done
[ -z "$missing" ] && exit 0
echo "deps: installing missing Debian packages:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "deps: missing packages:$missing" >&2
        echo "deps: run 'make deps' as root (or with passwordless sudo) to install them" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q --no-install-recommends $missing; then
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends $missing
fi
