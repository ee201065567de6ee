#!/bin/bash
# tests/deploy_slurm.sh: runs deploy/slurm/*.sbatch outside Slurm, with stub lpq programs that
# record their command lines, as tests/test_deploy.c asks: the coordinator job publishes its
# address and key, a worker array task connects to it, TERM reaches both daemons, the database
# is copied to the shared folder and the next coordinator job resumes from that copy.
# Usage (from the repository root): bash tests/deploy_slurm.sh   (exit 0: every check passed)
set -euo pipefail
repo=$(pwd)
t=$(mktemp -d)
trap 'kill $(jobs -p) 2> /dev/null || true; rm -rf "$t"' EXIT
fail() { echo "deploy_slurm: $*" >&2; for f in "$t"/*.out; do echo "--- $f" >&2; cat "$f" >&2; done; exit 1; }
# wait_for SECONDS TEST...: poll until the test holds.
wait_for() {
    local n=$(($1 * 20)); shift
    while ! "$@"; do n=$((n - 1)); [ "$n" -gt 0 ] || return 1; sleep 0.05; done
}

mkdir -p "$t/bin" "$t/log"
cat > "$t/bin/lpqctl" <<'STUB'
#!/bin/bash
if [ "$1" = keygen ]; then
    (umask 077; echo "secret-$2" > "$2.key"); echo "public-$2" > "$2.pub"; exit 0
fi
[ "$1" = --socket ] && [ "$3" = stats ] && [ -e "$2" ]
STUB
# The coordinator stub: a real SQLite file (one row per start) and a socket file; TERM ends it.
cat > "$t/bin/lpq-coordinator" <<'STUB'
#!/bin/bash
printf '%s\n' "$@" > "$STUB_LOG/coordinator.args"
while [ $# -gt 0 ]; do case $1 in --db) db=$2 ;; --socket) sock=$2 ;; esac; shift; done
sqlite3 "$db" "PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS starts(x); INSERT INTO starts VALUES(1);" > /dev/null
trap 'echo TERM >> "$STUB_LOG/coordinator.signals"; rm -f "$sock"; exit 0' TERM
touch "$sock"
while :; do sleep 0.05; done
STUB
cat > "$t/bin/lpq-worker" <<'STUB'
#!/bin/bash
printf '%s\n' "$@" > "$STUB_LOG/worker.args"
trap 'echo TERM >> "$STUB_LOG/worker.signals"; exit 0' TERM
while :; do sleep 0.05; done
STUB
chmod 755 "$t/bin/"*
export PATH="$t/bin:$PATH" STUB_LOG="$t/log" LPQ_SHARED="$t/shared" LPQ_HOST=node1.test
# the value after option $1 in the recorded command line $2
arg() { awk -v o="$1" 'p { print; exit } $0 == o { p = 1 }' "$2"; }
rows() { sqlite3 "$LPQ_SHARED/state/lpq.db" 'SELECT count(*) FROM starts' 2> /dev/null; }

# 1. The coordinator job: keys on first use, its address published once it answers.
mkdir -p "$t/node1"
SLURM_JOB_ID=101 TMPDIR="$t/node1" LPQ_SNAPSHOT_S=1 \
    bash "$repo/deploy/slurm/lpq-coordinator.sbatch" > "$t/coord1.out" 2>&1 &
coord=$!
wait_for 10 test -s "$LPQ_SHARED/coordinator.env" || fail "no coordinator.env"
grep -qx LPQ_COORDINATOR_JOB=101 "$LPQ_SHARED/coordinator.env" || fail "job id not published"
grep -qx LPQ_CONNECT=tcp://node1.test:5555 "$LPQ_SHARED/coordinator.env" || fail "address"
grep -qx LPQ_API=node1.test:5556 "$LPQ_SHARED/coordinator.env" || fail "API address"
cmp -s "$LPQ_SHARED/coordinator.pub" "$LPQ_SHARED/keys/coordinator.pub" || fail "public key"
[ "$(stat -c %a "$LPQ_SHARED/keys/coordinator.key")" = 600 ] || fail "secret key mode"
[ "$(stat -c %a "$LPQ_SHARED/keys/worker.key")" = 600 ] || fail "worker key mode"
cmp -s "$LPQ_SHARED/keys/workers.d/worker.pub" "$LPQ_SHARED/keys/worker.pub" || fail "admitted key"
[ "$(wc -c < "$LPQ_SHARED/keys/api-token")" -ge 16 ] || fail "API token shorter than 16"
a=$t/log/coordinator.args
case $(arg --db "$a") in "$t/node1/"*) ;; *) fail "database not on the node-local disk" ;; esac
[ "$(arg --workers "$a")" = tcp://0.0.0.0:5555 ] || fail "--workers"
[ "$(arg --curve-secret "$a")" = "$LPQ_SHARED/keys/coordinator.key" ] || fail "--curve-secret"
[ "$(arg --curve-keys "$a")" = "$LPQ_SHARED/keys/workers.d" ] || fail "--curve-keys"
[ "$(arg --token-file "$a")" = "$LPQ_SHARED/keys/api-token" ] || fail "--token-file"
case $(arg --tcp "$a") in
    127.*) ;;
    *) grep -qx -- --insecure "$a" || fail "--tcp beyond loopback without --insecure (refused)" ;;
esac
[ "$(stat -c %a "$LPQ_SHARED/keys/api-token")" = 600 ] || fail "API token readable by others"

# 2. A worker array task connects to it with the published key and its own.
mkdir -p "$t/node2"
SLURM_ARRAY_JOB_ID=102 SLURM_ARRAY_TASK_ID=3 SLURM_CPUS_PER_TASK=4 TMPDIR="$t/node2" \
    LPQ_COORDINATOR_JOB=101 bash "$repo/deploy/slurm/lpq-workers.sbatch" > "$t/worker.out" 2>&1 &
worker=$!
w=$t/log/worker.args
wait_for 10 test -s "$w" || fail "the worker did not start"
[ "$(arg --connect "$w")" = tcp://node1.test:5555 ] || fail "--connect"
[ "$(arg --threads "$w")" = 4 ] || fail "--threads is not the cores of the task"
[ "$(arg --curve-server-key "$w")" = "$LPQ_SHARED/coordinator.pub" ] || fail "--curve-server-key"
[ "$(arg --curve-secret "$w")" = "$LPQ_SHARED/keys/worker.key" ] || fail "worker --curve-secret"
case $(arg --cache-dir "$w") in "$t/node2/"*) ;; *) fail "cache not on the node" ;; esac
kill -TERM "$worker"
wait "$worker" || fail "the worker job did not exit 0 on TERM"
grep -q TERM "$t/log/worker.signals" || fail "TERM did not reach lpq-worker"

# 3. A worker waiting for another coordinator job never uses this one's address.
if LPQ_COORDINATOR_JOB=999 LPQ_WAIT_S=1 TMPDIR="$t/node2" \
    bash "$repo/deploy/slurm/lpq-workers.sbatch" > "$t/stale.out" 2>&1; then
    fail "a worker connected to the address of another coordinator job"
fi
grep -q "no address of coordinator job 999" "$t/stale.out" || fail "no clear message"

# 4. Snapshots while running; TERM: clean stop, address withdrawn, final copy, local files gone.
wait_for 10 test "$(rows)" = 1 || fail "no periodic snapshot"
kill -TERM "$coord"
wait "$coord" || fail "the coordinator job did not exit 0 on TERM"
grep -q TERM "$t/log/coordinator.signals" || fail "TERM did not reach lpq-coordinator"
[ ! -e "$LPQ_SHARED/coordinator.env" ] || fail "a dead address is still published"
[ -z "$(ls -A "$t/node1")" ] || fail "node-local files left behind"

# 5. The next coordinator job, on another node, starts from the copy.
mkdir -p "$t/node3"
SLURM_JOB_ID=201 TMPDIR="$t/node3" bash "$repo/deploy/slurm/lpq-coordinator.sbatch" \
    > "$t/coord2.out" 2>&1 &
coord=$!
wait_for 10 grep -sqx LPQ_COORDINATOR_JOB=201 "$LPQ_SHARED/coordinator.env" || fail "2nd job"
kill -TERM "$coord"
wait "$coord" || fail "the second coordinator job did not exit 0"
[ "$(rows)" = 2 ] || fail "the second job did not resume from the first one's database"
echo "deploy_slurm: all checks passed"
