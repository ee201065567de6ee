#!/bin/bash
# lpq's engine speed against ONNX Runtime (onnxruntime-node) and PyTorch, same models, same
# input, same thread counts; each measurement in its own process under /usr/bin/time -v for the
# peak resident memory. Usage (from anywhere): bench/engine/run.sh
# Rounds: the whole set (each model, thread count and runtime) is measured ROUNDS times in turn,
# so a slow minute of a shared host falls on every runtime alike; each table entry is the median
# over the rounds, each ratio (lpq/ORT, thread scaling) the median of the ratios within a round.
# Settings by environment: RUNS (timed runs per round, default 20), ROUNDS (3), WARMUP (3),
# THREADS ("1 2"),
# MODELS ("resnet18 mobilenet_v2"), LPQ (build/bin/lpq), LPQ_ISA (avx2: lpq's AVX2 kernels on
# an AVX-512 machine, see below), CPUID_SHIM (build/bench/cpuid_avx2.so; "none": LPQ_ISA=avx2
# forces lpq alone). Prints the medians, their ratios, the thread scaling and peak memory.
#
# The AVX2 row (LPQ_ISA=avx2) on an AVX-512 machine: every runtime, lpq, ONNX Runtime and PyTorch,
# runs under build/bench/cpuid_avx2.so (bench/engine/cpuid_avx2.c, built by `make`), an
# LD_PRELOAD shim that uses the CPU's CPUID faulting to hide AVX-512 (and AMX) from the process:
# MLAS, oneDNN, OpenBLAS and lpq's own dispatch then pick their AVX2 code, as on an AVX2-only
# machine; GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512... does the same for glibc's ifuncs (memcpy,
# libmvec), which ld.so chooses before the shim runs. Without CPUID faulting (no `cpuid_fault` in
# /proc/cpuinfo) the shim says so on stderr and the peers run their AVX-512 code; the header line
# says which. The shim is a benchmark tool only; lpq never links it.
# Needs /usr/bin/python3 with torch/torchvision/onnx, node + npm, /usr/bin/time; prints a table,
# then one verdict line per target (bench/verdict.sh): lpq no slower than ONNX Runtime, 2
# threads >= 1.8x one, peak memory below ONNX Runtime's. Every round's times: $OUT/rounds.tsv.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/verdict.sh
OUT=build/bench/engine
RUNS=${RUNS:-20}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-3}
THREADS=${THREADS:-"1 2"}
MODELS=${MODELS:-"resnet18 mobilenet_v2"}
LPQ=${LPQ:-build/bin/lpq}
PY=/usr/bin/python3
mkdir -p "$OUT"

# PRE: the command prefix of every runtime's process (empty, or the AVX2 shim and glibc tunables)
PRE=()
peers="ORT and torch run their best code (AVX-512 where the CPU has it)"
if [ "${LPQ_ISA:-}" = avx2 ] && [ "${CPUID_SHIM:-}" != none ]; then
    SHIM=${CPUID_SHIM:-build/bench/cpuid_avx2.so}
    [ -f "$SHIM" ] || { echo "bench: $SHIM missing (make $SHIM)" >&2; exit 1; }
    hide=AVX512F,AVX512VL,AVX512BW,AVX512DQ,AVX512CD,AVX512_IFMA,AVX512_VBMI,AVX512_VBMI2
    hide=$hide,AVX512_VNNI,AVX512_BITALG,AVX512_VPOPCNTDQ,AVX512_BF16,AVX512_FP16
    PRE=(env "LD_PRELOAD=$(realpath "$SHIM")" "GLIBC_TUNABLES=glibc.cpu.hwcaps=-${hide//,/,-}")
    if grep -qw cpuid_fault /proc/cpuinfo; then
        peers="lpq, ORT and torch all forced to AVX2 via CPUID masking ($SHIM)"
    else
        peers="no CPUID faulting on this CPU: ORT and torch run their best code, unlike lpq"
    fi
elif [ "${LPQ_ISA:-}" = avx2 ]; then
    peers="CPUID_SHIM=none: only lpq is forced to AVX2; ORT and torch run their best code"
fi

# (a) models and input, once (PyTorch exports them: Debian's python3-torch and friends, which
# `make deps` installs only with LPQ_BENCH_DEPS=1, as make test does not need them)
if ! $PY -c 'import torch, torchvision, onnx' 2>/dev/null; then
    echo "bench: $PY cannot import torch, torchvision and onnx; run LPQ_BENCH_DEPS=1 make deps" \
         "(or apt-get install python3-torch python3-torchvision python3-onnx)" >&2
    exit 1
fi
for m in $MODELS; do
    [ -f "$OUT/$m.onnx" ] && [ -f "$OUT/input.npy" ] || { $PY bench/engine/export.py --out "$OUT"; break; }
done
# (b) ONNX Runtime for node; --ignore-scripts: the install script would fetch GPU libraries
if [ ! -d bench/engine/node_modules/onnxruntime-node ]; then
    (cd bench/engine && npm install --ignore-scripts --no-audit --no-fund >&2)
fi

lpq_ok=0
if [ -x "$LPQ" ] && "$LPQ" run --help >/dev/null 2>&1; then lpq_ok=1; fi

# measure NAME CMD...: runs CMD under /usr/bin/time -v; sets MS (median_batch_ms from the JSON
# object CMD prints last) and MB (peak resident set size), or "n/a" when CMD fails.
measure() {
    local name=$1; shift
    local log="$OUT/$name"
    if /usr/bin/time -v -o "$log.time" "$@" >"$log.json" 2>"$log.err"; then
        MS=$($PY -c 'import json,sys; o=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print("%.2f" % o["median_batch_ms"])' "$log.json")
        MB=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$log.time")
    else
        echo "bench: $name failed (see $log.err): $(tail -1 "$log.err")" >&2
        MS=n/a; MB=n/a
    fi
}

ratio() { [ "$1" = n/a ] || [ "$2" = n/a ] && echo n/a || awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# median of the arguments that are numbers (n/a when none)
median() { printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g | awk '{ v[NR] = $1 } END { if (!NR) print "n/a"; else printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# the largest of the numbers among the arguments
largest() { printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g | tail -1 | grep . || echo n/a; }

# max |lpq - ORT| / max |ORT| over the logits: the speed is only worth reporting if this is small
check() {
    [ -f "$1" ] && [ -f "$2" ] || { echo n/a; return; }
    $PY -c 'import numpy as np,sys; a=np.load(sys.argv[1]); b=np.load(sys.argv[2]); print("%.1e" % (np.abs(a-b).max() / np.abs(b).max()) if a.shape == b.shape else "shape")' "$1" "$2"
}

echo "lpq engine benchmark: batch 8, 224x224, $ROUNDS rounds of $RUNS timed runs (lpq: all $RUNS; ORT, torch: after $WARMUP warm-up), median ms per batch"
echo "ONNX Runtime: onnxruntime-node $(node -p 'require("./bench/engine/node_modules/onnxruntime-node/package.json").version'); PyTorch: $($PY -c 'import torch; print(torch.__version__)'); $(nproc) cores"
[ -z "${LPQ_ISA:-}" ] || echo "ISA: LPQ_ISA=$LPQ_ISA; $peers"
[ $lpq_ok = 1 ] || echo "lpq: unavailable ($LPQ has no 'run' subcommand yet)"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A ms=() mb=()
# every round measures everything once, in the same order
for r in $(seq "$ROUNDS"); do
    for m in $MODELS; do
        for t in $THREADS; do
            rm -f "$OUT/${m}_t${t}_lpq_out.npy" "$OUT/${m}_ort_out.npy"
            MS=n/a; MB=n/a
            if [ $lpq_ok = 1 ]; then
                measure "${m}_t${t}_lpq" "${PRE[@]}" "$LPQ" run --model "$OUT/$m.onnx" --data "$OUT/input.npy" \
                    --batch 8 --threads "$t" --repeat "$RUNS" --out "$OUT/${m}_t${t}_lpq_out.npy" --json
                [ "$MS" = n/a ] || isa=$($PY -c 'import json,sys; o=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print(o.get("isa", "?") + ", OpenBLAS " + o.get("blas_core", "?"))' "$OUT/${m}_t${t}_lpq.json")
            fi
            ms[$m,$t,lpq,$r]=$MS; mb[$m,$t,lpq,$r]=$MB
            measure "${m}_t${t}_ort" "${PRE[@]}" node bench/engine/ort.js "$OUT/$m.onnx" "$OUT/input.npy" "$t" "$RUNS" "$WARMUP" "$OUT/${m}_ort_out.npy"
            ms[$m,$t,ort,$r]=$MS; mb[$m,$t,ort,$r]=$MB
            measure "${m}_t${t}_torch" "${PRE[@]}" $PY bench/engine/torch_bench.py "$m" "$OUT/input.npy" "$t" "$RUNS" "$WARMUP"
            ms[$m,$t,torch,$r]=$MS; mb[$m,$t,torch,$r]=$MB
        done
    done
done
# every round's figures, for a look at the spread: $OUT/rounds.tsv
{ printf 'round\tmodel\tthreads\tlpq_ms\tort_ms\ttorch_ms\n'
  for r in $(seq "$ROUNDS"); do for m in $MODELS; do for t in $THREADS; do
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$m" "$t" "${ms[$m,$t,lpq,$r]}" "${ms[$m,$t,ort,$r]}" \
          "${ms[$m,$t,torch,$r]}"
  done; done; done; } >"$OUT/rounds.tsv"
# rounds_of KEY-PREFIX ARRAY: the values of ARRAY[prefix,round] over the rounds
rounds_of() { local -n a=$2; local r; for r in $(seq "$ROUNDS"); do echo "${a[$1,$r]}"; done; }
# ratio_median A B: the median over the rounds of ms[A,r] / ms[B,r]
ratio_median() { local r v=(); for r in $(seq "$ROUNDS"); do v+=("$(ratio "${ms[$1,$r]}" "${ms[$2,$r]}")"); done; median "${v[@]}"; }
printf '%-13s %3s %9s %9s %9s %8s %8s %7s %7s %8s %9s\n' model thr "lpq ms" "ORT ms" "torch ms" lpq/ORT torch/ORT "lpq MB" "ORT MB" "torch MB" "lpq err"
scal=""
verdicts=""
for m in $MODELS; do
    for t in $THREADS; do
        lpq_ms=$(median $(rounds_of "$m,$t,lpq" ms)); ort_ms=$(median $(rounds_of "$m,$t,ort" ms))
        torch_ms=$(median $(rounds_of "$m,$t,torch" ms))
        lpq_mb=$(largest $(rounds_of "$m,$t,lpq" mb)); ort_mb=$(largest $(rounds_of "$m,$t,ort" mb))
        torch_mb=$(largest $(rounds_of "$m,$t,torch" mb))
        lpq_ort=$(ratio_median "$m,$t,lpq" "$m,$t,ort")
        printf '%-13s %3s %9s %9s %9s %8s %8s %7s %7s %8s %9s\n' "$m" "$t" "$lpq_ms" "$ort_ms" "$torch_ms" \
            "$lpq_ort" "$(ratio_median "$m,$t,torch" "$m,$t,ort")" "$lpq_mb" "$ort_mb" "$torch_mb" \
            "$(check "$OUT/${m}_t${t}_lpq_out.npy" "$OUT/${m}_ort_out.npy")"
        verdicts="$verdicts$(bench_verdict engine "$m, $t thread(s): lpq's median time per batch / ONNX Runtime's" \
            "$lpq_ort" "<=" 1.0 x)
$(bench_verdict engine "$m, $t thread(s): lpq's peak memory, below ONNX Runtime's" "$lpq_mb" "<" "$ort_mb" MB)
"
    done
    # thread scaling: the time at the first thread count over the time at each other one
    set -- $THREADS
    t1=$1; shift
    for t in "$@"; do
        up=$(ratio_median "$m,$t1,lpq" "$m,$t,lpq")
        scal="$scal$(printf '%-13s %8s %9s %9s %9s' "$m" "$t1->$t" "$up" \
            "$(ratio_median "$m,$t1,ort" "$m,$t,ort")" "$(ratio_median "$m,$t1,torch" "$m,$t,torch")")
"
        verdicts="$verdicts$(bench_verdict engine "$m: lpq's speed-up from $t1 to $t threads" "$up" ">=" 1.8 x)
"
    done
done
echo "ratios: the median over the rounds of the ratio within each round; peak MB: the largest maximum resident set size of the whole process over the rounds (node and python interpreters included)"
echo "lpq kernels: ${isa:-n/a} (LPQ_ISA=${LPQ_ISA:-unset}); lpq err: max |lpq - ORT| / max |ORT| over the logits"
echo
echo "thread scaling: ms per batch at the first thread count / at the other, the median over the rounds (2.00 = twice as fast):"
printf '%-13s %8s %9s %9s %9s\n' model threads lpq ORT torch
printf '%s' "$scal"
echo "load average before/after: $load0 / $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '%s' "$verdicts"
