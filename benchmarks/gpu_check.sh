#!/usr/bin/env bash
# The prepared GPU check (README, "Several processes: GPUs and nodes"): on a CUDA machine, the GPU's bf16 and fp32
# matmul peaks, corpus encoding docs/s, training triples/s, whether codecarbon reads energy through NVML, and the
# wall-clock of the main command on a SciFact slice and in full; with two or more GPUs also torchrun with NCCL.
# Without CUDA it prints one line and exits 0.
#
#     bash benchmarks/gpu_check.sh [output folder, default: a new temporary one]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check: needs a CUDA GPU (torch.cuda.is_available() is False here); nothing was run"
    exit 0
fi

OUT_DIR="${1:-$(mktemp -d)}"
mkdir -p "$OUT_DIR"
if [ -z "${IR_DATASETS_HOME:-}" ]; then  # the offline copy next to the checkout, as the tests seed it
    for shared in ../shared/ir_datasets shared/ir_datasets; do
        if [ -d "$shared" ]; then
            cp -r "$shared" "$OUT_DIR/ir_datasets" && chmod -R u+w "$OUT_DIR/ir_datasets"
            export IR_DATASETS_HOME="$OUT_DIR/ir_datasets"
            break
        fi
    done
fi
MAIN=(run --regimes all --data-fraction 0.135 --device cuda --cache-dir "$OUT_DIR/cache" --out "$OUT_DIR/results")

python benchmarks/gpu_check.py

rates() {  # training triples/s and corpus-encoding docs/s of a finished run, from its phases.csv
    python - "$1" <<'PY'
import sys
import pandas as pd
phases = pd.read_csv(f"{sys.argv[1]}/phases.csv")
fresh = phases[~phases["reused"].astype(bool)]
for phase, unit in (("train", "triples"), ("index", "docs")):
    rows = fresh[fresh["phase"] == phase]
    if rows.empty or rows["wall_s"].sum() == 0:
        print(f"  {phase}: not measured in this run")
    else:
        print(f"  {phase}: {rows['count'].sum() / rows['wall_s'].sum():.1f} {unit}/s over {rows['wall_s'].sum():.1f} s")
PY
}

timed() {  # a command's wall-clock in seconds, its output kept in a log
    local name=$1
    shift
    local started=$SECONDS
    "$@" > "$OUT_DIR/$name.log" 2>&1 || { echo "$name failed; see $OUT_DIR/$name.log"; tail -5 "$OUT_DIR/$name.log"; return 1; }
    echo "$name: $((SECONDS - started)) s wall-clock"
}

timed slice python -m benchmark "${MAIN[@]}" --max-train-triples 600 --max-eval-queries 50 --run-id slice
rates "$OUT_DIR/results/slice"
timed main python -m benchmark "${MAIN[@]}" --run-id main
rates "$OUT_DIR/results/main"
grep -h "supported\|inconclusive" "$OUT_DIR/results/main/report.md" | head -4 || true

GPUS=$(python -c "import torch; print(torch.cuda.device_count())")
if [ "$GPUS" -ge 2 ]; then
    timed torchrun-slice torchrun --standalone --nproc-per-node "$GPUS" -m benchmark "${MAIN[@]}" \
        --max-train-triples 600 --max-eval-queries 50 --run-id torchrun-slice
    python -c "import pandas as pd; r = pd.read_csv('$OUT_DIR/results/torchrun-slice/results.csv'); \
print('  processes:', sorted(set(r['processes'].dropna().astype(int))))"
    rates "$OUT_DIR/results/torchrun-slice"
else
    echo "torchrun with NCCL: not run (one GPU)"
fi
echo "outputs in $OUT_DIR"
