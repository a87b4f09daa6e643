#!/usr/bin/env bash
# The v2 synthetic reproduction (issues 13 and 14), resumable: rerun it and it continues where it stopped.
# RATIO (default 1.0; 0.5 and 0.9 for issue 14) and SEEDS_UP_TO (default 10) pick the runs; all go to one CSV.
# AMP=bf16 trains under bfloat16 autocast (train.py --amp; the rows record it); saliency stays fp32.
# CSV (default results/synthetic/results.csv) puts a separate experiment, e.g. a bf16 bridge, elsewhere.
# Seed-major: `sweep.py --seeds N` runs every seed up to N of all 7 settings that has no final row yet,
# JOBS (default 2) at a time, one thread each. Then it scores what is not scored yet:
#   every run:  gradient saliency's cascading randomisation (saliency.py --cascade, about a minute)
#   seeds up to IG_SEEDS (default 3): integrated gradients and occlusion, with their untrained baselines
#               (16 and 8 minutes a run, half that when the seed's untrained scores are cached; 0: none)
# IG and occlusion read the run's best.pt, which is not committed and may not survive a change of machine,
# so seeds up to IG_SEEDS stop for scoring one at a time; later seeds go in pairs.
set -euo pipefail
cd "$(dirname "$0")/../.."
CSV=${CSV:-results/synthetic/results.csv}  # the run directories go beside it, in runs/
RATIO=${RATIO:-1.0}
UP_TO=${SEEDS_UP_TO:-10}
IG=${IG_SEEDS:-3}
for n in $(seq 1 "$UP_TO"); do
  (( n <= IG || (n - IG) % 2 == 0 || n == UP_TO )) || continue
  OMP_NUM_THREADS=1 python sweep.py --phase seeds --dataset synthetic --ratios "$RATIO" --methods all \
      --mask-fills shuffle zero --seeds "$n" --epochs 20 --patience 20 --jobs "${JOBS:-2}" --results "$CSV" \
      ${AMP:+--amp "$AMP"}
  # What is not scored yet, one "run-dir method [--cascade]" line each (recorded rows are skipped).
  python - "$CSV" "$RATIO" "$IG" <<'PY' | xargs -r -L 1 -P "${JOBS:-2}" sh -c \
      'OMP_NUM_THREADS=1 python saliency.py --run "$0" --saliency "$1" $2 --results '"$CSV"
import sys, results
csv, ratio, ig_seeds = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
scored = {(r["run_dir"], r["saliency"], r["randomized"]) for r in results.read_rows(csv, kind="saliency")}
runs = [r for r in results.read_rows(csv, kind="final") if float(r["ratio"]) == ratio and r["selected_epoch"]]
for r in runs:  # the cheap ones first: a gradient cascade takes a minute, IG 16, occlusion 8
    if (r["run_dir"], "grad", "conv1") not in scored:
        print(r["run_dir"], "grad", "--cascade")
for r in runs:
    for method in ("ig", "occlusion"):
        if int(r["seed"]) <= ig_seeds and (r["run_dir"], method, "") not in scored:
            print(r["run_dir"], method)
PY
done
