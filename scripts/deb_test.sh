#!/bin/bash
# The Debian packages (lpq, lpq-data), checked on this machine (as root; CI runs it from .ci/run, `make check-deb`):
#   1. lintian passes (no error or warning; info tags are overridden with reasons in
#      debian/*.lintian-overrides);
#   2. `make install PREFIX=/usr DESTDIR=tmp` puts down the packages' very file list (less the
#      files only Debian adds), and `make uninstall` takes all of it away again;
#   3. dpkg -i: the programs and man pages from the installed paths, systemd-analyze verify on
#      the installed units (disabled, not started), the system user, the conffiles,
#      `lpq format` and a small `lpq eval` on the installed model, the two daemons run as the
#      system user (no systemd here to start the units: the machines run without it as init);
#   4. dpkg --purge leaves nothing behind: the same files under /etc /usr /var /lib /opt as
#      before the install, and no user _lpq.
# Usage: scripts/deb_test.sh BUILD_DIR lpq_VERSION_ARCH.deb lpq-data_VERSION_all.deb
set -euo pipefail
build=$1
shift
debs=("$@")
[ "$(id -u)" = 0 ] || { echo "deb_test: needs root (dpkg -i)" >&2; exit 1; }
for deb in "${debs[@]}"; do
    [ -f "$deb" ] || { echo "deb_test: no $deb (make deb)" >&2; exit 1; }
done
for p in lpq lpq-data; do
    if dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q 'installed'; then
        echo "deb_test: $p is installed already; remove it first" >&2
        exit 1
    fi
done
work=$(mktemp -d)
chmod 0755 "$work" # lpq eval runs in it as nobody
installed=0
pids=""
cleanup() {
    for p in $pids; do kill -KILL "$p" 2> /dev/null || true; done
    for p in $pids; do wait "$p" 2> /dev/null || true; done # deluser refuses a user's running processes
    if [ "$installed" = 1 ]; then dpkg --purge lpq lpq-data > /dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
step() { echo "deb_test: $*"; }
fail() { echo "deb_test: FAIL: $*" >&2; exit 1; }

step "lintian $(for d in "${debs[@]}"; do basename "$d"; done | tr '\n' ' ')"
# Info and pedantic tags are shown too; errors and warnings fail.
lintian_rc=0
lintian --fail-on error,warning -I --pedantic --color never "${debs[@]}" > "$work/lintian.log" 2>&1 \
    || lintian_rc=$?
grep -v 'running with root privileges' "$work/lintian.log" | sed 's/^/  /' || true
[ "$lintian_rc" = 0 ] || fail "lintian"

step "make install PREFIX=/usr DESTDIR=... holds the packages' file list"
# Debian's own additions: its copyright and changelog, lintian's overrides.
debian_only='^\./usr/share/doc/lpq/(copyright|changelog\.gz)$|^\./usr/share/doc/lpq-data(/|$)|^\./usr/share/lintian(/|$)'
for deb in "${debs[@]}"; do dpkg-deb -c "$deb"; done | awk '{ print $6 }' | sed 's|/$||' \
    | grep -Ev "$debian_only" | sort -u > "$work/deb.list"
make --no-print-directory -s BUILD="$build" install PREFIX=/usr DESTDIR="$work/root" > /dev/null
(cd "$work/root" && find . | sort) > "$work/install.list"
diff -u "$work/deb.list" "$work/install.list" || fail "the packages and make install differ (- packages, + make install)"
echo "  $(grep -c . "$work/deb.list") paths, the same in both"
make --no-print-directory -s BUILD="$build" uninstall PREFIX=/usr DESTDIR="$work/root"
left=$(find "$work/root" -mindepth 1 | head)
[ -z "$left" ] || fail "make uninstall left: $left"

# What the machine holds, outside the places that change by themselves (dpkg's and apt's
# databases, logs, caches of man and debconf) and /tmp.
snapshot() {
    find /etc /usr /var /lib /opt -xdev \
        \( -path /var/lib/dpkg -o -path /var/log -o -path /var/cache/man -o -path /var/cache/apt \
        -o -path /var/lib/apt -o -path /var/cache/debconf -o -path /var/tmp -o -path /var/lib/lintian \
        -o -path /var/cache/ldconfig -o -path /var/lib/systemd/timers \) -prune -o -print 2> /dev/null | sort
}
snapshot > "$work/before.list"

step "dpkg -i"
installed=1
dpkg -i "${debs[@]}" > "$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i"; }
for p in lpq lpqctl lpq-coordinator lpq-worker; do
    [ "$(command -v "$p")" = "/usr/bin/$p" ] || fail "$p is not /usr/bin/$p"
done
lpq --help > /dev/null || fail "lpq --help"
lpq-coordinator --help > /dev/null || fail "lpq-coordinator --help"
for page in lpq lpqctl lpq-coordinator lpq-worker; do
    w=$(man -w "$page") || fail "man -w $page"
    case $w in /usr/share/man/*) ;; *) fail "man -w $page: $w" ;; esac
done
echo "  programs in /usr/bin, --help, man -w $(man -w lpq)"
getent passwd _lpq > /dev/null || fail "no system user _lpq"
units=$(dpkg -L lpq | grep -E '/systemd/system/lpq-(coordinator|worker@)\.service$')
[ "$(echo "$units" | wc -l)" = 2 ] || fail "the units: $units"
for u in lpq-coordinator.service lpq-worker@.service; do
    state=$(systemctl is-enabled "$u" 2> /dev/null || true)
    case $state in disabled | indirect) ;; *) fail "$u is $state, not disabled" ;; esac
done
if [ -d /run/systemd/system ] && systemctl is-active -q lpq-coordinator.service; then
    fail "lpq-coordinator.service was started"
fi
command -v systemd-analyze > /dev/null || fail "systemd-analyze is missing (make deps installs systemd)"
(cd / && systemd-analyze verify lpq-coordinator.service lpq-worker@1.service) > "$work/verify.log" 2>&1 \
    || { cat "$work/verify.log"; fail "systemd-analyze verify"; }
if [ -s "$work/verify.log" ]; then cat "$work/verify.log"; fail "systemd-analyze verify complained"; fi
echo "  units $(echo "$units" | tr "\n" " ")disabled; systemd-analyze verify: no complaint"
conffiles=$(dpkg-query -W -f='${Conffiles}' lpq | awk '{ print $1 }' | sort | tr '\n' ' ')
[ "$conffiles" = "/etc/lpq/coordinator.env /etc/lpq/worker.env " ] || fail "conffiles: $conffiles"
echo "  conffiles: $conffiles"

lpq format 'lp<8,2,2,0>' | tee "$work/format.txt" | sed 's/^/  /'
grep -q '^maxpos' "$work/format.txt" || fail "lpq format"
m=/usr/share/lpq/models
echo '{"version":1,"default":{"w":"lp<4,1,2,auto_ch>","a":"lp<8,2,2,auto>"}}' > "$work/c.json"
(cd "$work" && runuser -u nobody -- lpq eval --model $m/resnet18.onnx --config c.json \
    --data $m/fashion_test_256.npy --labels $m/fashion_test_256_labels.npy --calib 32 --json) \
    > "$work/eval.json" 2> "$work/eval.err" || { cat "$work/eval.err"; fail "lpq eval"; }
python3 - "$work/eval.json" << 'EOF' || fail "lpq eval's answer"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["layers"] == 21 and r["calibration_samples"] == 32 and r["l_co"] > 0, r
assert r["mean_weight_bits"] == 4.0 and 0 < r["top1_quantized"] <= 100, r
print("  lpq eval (as nobody, the installed resnet18, 32 calibration samples): L_CO %.4f,"
      " top-1 fp32 %.2f%%, quantized %.2f%%" % (r["l_co"], r["top1_fp32"], r["top1_quantized"]))
EOF

step "the installed daemons, as the user _lpq"
# On an ipc:// endpoint in a private folder: no port that other tests on this host may hold.
run=$work/run
install -d -o _lpq -g _lpq -m 0700 "$run"
# exec: run in the background, $! is the daemon itself, which the signals below must reach.
as_lpq() { exec setpriv --reuid=_lpq --regid=_lpq --init-groups -- "$@"; }
as_lpq lpq-coordinator --db "$run/lpq.db" --socket "$run/lpq.sock" --workers "ipc://$run/w.ipc" \
    --log-level 1 2> "$work/coordinator.log" &
coordinator=$!
as_lpq lpq-worker --connect "ipc://$run/w.ipc" --id deb-test --synthetic 1 --cache-dir "$run/cache" \
    --log-level 1 2> "$work/worker.log" &
worker=$!
pids="$worker $coordinator"
for _ in $(seq 1 100); do
    if lpqctl --socket "$run/lpq.sock" workers 2> /dev/null | grep -q deb-test; then break; fi
    sleep 0.2
done
lpqctl --socket "$run/lpq.sock" workers | grep -q deb-test \
    || { cat "$work/coordinator.log" "$work/worker.log"; fail "the worker did not reach the coordinator"; }
kill -TERM "$worker"
wait "$worker" || { cat "$work/worker.log"; fail "lpq-worker did not stop cleanly on SIGTERM"; }
kill -TERM "$coordinator"
wait "$coordinator" || { cat "$work/coordinator.log"; fail "lpq-coordinator did not stop cleanly"; }
pids=""
echo "  lpq-coordinator and lpq-worker ran as _lpq, lpqctl saw the worker, both stopped on SIGTERM"

step "dpkg --purge"
dpkg --purge lpq lpq-data > "$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg --purge"; }
installed=0
! getent passwd _lpq > /dev/null || fail "the user _lpq is still there"
! getent group _lpq > /dev/null || fail "the group _lpq is still there"
snapshot > "$work/after.list"
diff -u "$work/before.list" "$work/after.list" || fail "the purge left files behind (+) or took some (-)"
echo "  nothing left behind ($(grep -c . "$work/before.list") paths compared)"
step "passed"
