#!/bin/bash
# make demo: lpq as its users meet it, on this machine, in a few minutes:
# the coordinator with its embedded default (SQLite under ./var), two local workers, a search of
# the bundled ResNet-18 (Fashion-MNIST) with a small budget submitted over the API, its progress,
# the Pareto front, the best config with its top-1 and accelerator cost, then everything stops.
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
BIN=$build/bin
VAR=var/demo
DB=$VAR/lpq.db
SOCK=$VAR/lpq.sock
ENDPOINT=tcp://127.0.0.1:${LPQ_DEMO_PORT:-5555}
rm -rf "$VAR"
mkdir -p "$VAR"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }

step "starting lpq-coordinator (database $DB, API $SOCK, workers $ENDPOINT)"
"$BIN/lpq-coordinator" --db "$DB" --socket "$SOCK" --workers "$ENDPOINT" --log-level 1 \
  2> "$VAR/coordinator.log" &
pids+=($!)
for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { cat "$VAR/coordinator.log"; exit 1; }

step "starting two lpq-workers"
for i in 1 2; do
  "$BIN/lpq-worker" --connect "$ENDPOINT" --cache-dir "$VAR/worker$i" --id "demo-worker-$i" \
    --log-level 1 2> "$VAR/worker$i.log" &
  pids+=($!)
done
sleep 1
"$BIN/lpqctl" --socket "$SOCK" workers

step "submitting a search of ResNet-18: weights <= 4.5 mean bits, first and last layer at 8 bits"
# calibration: 128 training images; 6 generations of 16 (about 100 evaluations)
"$BIN/lpqctl" --socket "$SOCK" submit --name resnet18-demo \
  --model "$PWD/models/resnet18.onnx" --data "$PWD/models/fashion_calib_256.npy" \
  --seed 1 --set population=16 --set generations=5 --set calib=128 \
  --set constraints.mean_weight_bits_max=4.5 --set pin_ends=true

step "the Pareto front of the last generation"
"$BIN/lpqctl" --socket "$SOCK" pareto 1 --plot "$VAR/front.svg"

step "the best config: its scores and its cost on the LPA"
"$BIN/lpqctl" --socket "$SOCK" export 1 --what config,onnx,packed -o "$VAR"
"$BIN/lpq" eval --model models/resnet18.onnx --data models/fashion_test_256.npy \
  --labels models/fashion_test_256_labels.npy --calib-data models/fashion_calib_256.npy \
  --calib 128 --config "$VAR/config.json"
"$BIN/lpq" accel --model models/resnet18.onnx --config "$VAR/config.json" | sed -n '/^totals/,$p'

step "what is left behind"
echo "database:  $DB   (sqlite3 $DB 'select * from v_generation_stats')"
echo "front:     $VAR/front.svg"
echo "config:    $VAR/config.json, model with LP-rounded weights: $VAR/model_lp.onnx, packed: $VAR/weights.lpw"
