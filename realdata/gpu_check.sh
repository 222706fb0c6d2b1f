#!/usr/bin/env bash
# GPU check of the real-data arm (about 10 minutes): on a CUDA machine, trains the mnist-vit
# preset (embedded MNIST, paper's hyper-parameters, bf16 autocast) for STEPS steps with each
# optimizer (SGD, Adam, SNGD, SPS), prints step times and losses, runs a small step-size sweep
# (`python -m realdata sweep`) and prints the summary table of the compare runs
# (realdata.summary), then the optimizer overhead benchmark; with several GPUs also a short
# torchrun (DDP, nccl) run.
#
# Usage, from the repository root after `pip install -e .` (uses .venv/bin/python when present,
# else $PYTHON or python3):   bash realdata/gpu_check.sh       [STEPS=300 by default]
# DEVICE=cpu STEPS=5 runs the same script on a CPU (a dry run of the script itself).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
STEPS=${STEPS:-300}
DEVICE=${DEVICE:-cuda}
export DEVICE
OUT=${OUT_DIR:-$(mktemp -d)}

"$PY" - <<'EOF'
import os, sys
try:
    import torch, realdata  # noqa: F401
except ImportError as err:
    sys.exit(f"cannot import the project ({err}): run `pip install -e .` first")
if os.environ["DEVICE"] == "cpu":
    print(f"torch {torch.__version__}, dry run on the CPU")
    sys.exit(0)
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} sees no CUDA device: nothing to check")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} x "
      f"{torch.cuda.get_device_name(0)}")
EOF

echo "== mnist-vit, $STEPS steps per optimizer, outputs in $OUT/mnist-vit"
timeout 300 "$PY" -m realdata compare --preset mnist-vit --device "$DEVICE" --steps "$STEPS" \
    --checkpoint-every 100 --no-progress -o "$OUT/mnist-vit"

"$PY" - "$OUT/mnist-vit" <<'EOF'
import csv, sys
from pathlib import Path
from realdata.train import read_metrics
root = Path(sys.argv[1])
print(f"{'optimizer':>9} {'ms/step':>8} {'loss@1':>8} {'loss@100':>9} {'final(10%)':>10} {'heldout acc':>11}")
for row in csv.DictReader(open(root / "summary.csv")):
    m = read_metrics(root / row["run_dir"])
    at100 = m["loss"][min(99, len(m["loss"]) - 1)]
    print(f"{row['optimizer']:>9} {1e3 * float(row['mean_step_time_s']):8.2f} {m['loss'][0]:8.4f} "
          f"{at100:9.4f} {float(row['final_train_loss']):10.4f} {float(row['heldout_acc']):11.4f}")
EOF

echo "== sweep: SGD and SNGD over 2 step sizes, seeds 0 1, $STEPS steps, in $OUT/sweep"
timeout 300 "$PY" -m realdata sweep --preset mnist-vit --device "$DEVICE" --steps "$STEPS" \
    --optimizers sgd sngd --lrs sgd=0.03,0.1 sngd=0.001,0.01 --eta-maxs sngd=0.01 \
    --seeds 0 1 --no-progress \
    -o "$OUT/sweep"

echo "== summary of the compare runs (loss and accuracy at 25/50/100 % of the budget)"
"$PY" - "$OUT/mnist-vit" <<'EOF'
import sys
from realdata.summary import find_runs, format_table, summarize, summarize_run
root = sys.argv[1]
print(format_table(summarize([summarize_run(r, root) for r in find_runs(root)])))
EOF

echo "== optimizer overhead (ratios against SGD, same process)"
timeout 120 "$PY" benchmarks/bench_optim.py --device "$DEVICE" --rounds 3

NGPU=$("$PY" -c "import torch; print(torch.cuda.device_count())")
[ "$DEVICE" = cuda ] || NGPU=0
if [ "$NGPU" -gt 1 ]; then
    echo "== DDP: torchrun --nproc_per_node $NGPU, 50 steps of SPS"
    timeout 120 "$PY" -m torch.distributed.run --standalone --nproc_per_node "$NGPU" \
        -m realdata train --preset mnist-vit --optimizer sps --device cuda --steps 50 \
        --no-progress -o "$OUT/ddp-sps"
    "$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); print('parameter spread across ranks:', r['ddp_param_max_abs_diff'])" "$OUT/ddp-sps/result.json"
fi
echo "gpu check done"
