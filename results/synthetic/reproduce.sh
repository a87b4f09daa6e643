#!/usr/bin/env bash
# The v2 synthetic reproduction (ratio 1.0 and the no-shift control), resumable: rerun it and it continues where it stopped.
# RATIO (default 1.0; 0.5 and 0.9 for the no-shift control) and SEEDS_UP_TO (default 10) pick the runs; all go to one CSV.
# AMP=bf16 trains under bfloat16 autocast (train.py --amp; the rows record it); saliency stays fp32.
# CSV (default results/synthetic/results.csv) puts a separate experiment, e.g. a bf16 bridge, elsewhere.
# EPOCHS (default 20, patience the same) and METHODS (default all) serve such experiments too, e.g. the
# 100-epoch Adversarial runs that test REPRODUCTION.md's guess about its gap to the paper.
# Seed-major: `sweep.py --seeds N` runs every seed up to N of all 7 settings that has no final row yet,
# JOBS (default 2) at a time, one thread each. Then it scores what is not scored yet:
#   every run:  gradient saliency's cascading randomisation (saliency.py --cascade, about a minute)
#   IG_SEEDS runs (default 3) of each setting, the lowest seeds: integrated gradients and occlusion, with
#               their untrained baselines (16 and 8 minutes a run, a third of that when the seed's untrained
#               scores are cached; 0: none)
# Scoring reads the run's best.pt, which is not committed and may not survive a change of machine: so
# seeds up to IG_SEEDS stop for scoring one at a time (later seeds go in pairs), and a run whose best.pt
# is not here is left out, its IG and occlusion going to the next seed of its setting instead.
set -euo pipefail
cd "$(dirname "$0")/../.."
CSV=${CSV:-results/synthetic/results.csv}  # the run directories go beside it, in runs/
RATIO=${RATIO:-1.0}
UP_TO=${SEEDS_UP_TO:-10}
EPOCHS=${EPOCHS:-20}
IG=${IG_SEEDS:-3}
for n in $(seq 1 "$UP_TO"); do
  (( n <= IG || (n - IG) % 2 == 0 || n == UP_TO )) || continue
  OMP_NUM_THREADS=1 python sweep.py --phase seeds --dataset synthetic --ratios "$RATIO" --methods ${METHODS:-all} \
      --mask-fills shuffle zero --seeds "$n" --epochs "$EPOCHS" --patience "$EPOCHS" --jobs "${JOBS:-2}" --results "$CSV" \
      ${AMP:+--amp "$AMP"}
  # What is not scored yet, one "run-dir method [--cascade]" line each (recorded rows are skipped).
  python - "$CSV" "$RATIO" "$IG" <<'PY' | xargs -r -L 1 -P "${JOBS:-2}" sh -c \
      'OMP_NUM_THREADS=1 python saliency.py --run "$0" --saliency "$1" $2 --results '"$CSV"
import collections, os, sys, results
csv, ratio, ig_seeds = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
scored = {(r["run_dir"], r["saliency"], r["randomized"]) for r in results.read_rows(csv, kind="saliency")}
runs = sorted((r for r in results.read_rows(csv, kind="final") if float(r["ratio"]) == ratio and r["selected_epoch"]),
              key=lambda r: int(r["seed"]))
missing = lambda r: [m for m in ("ig", "occlusion") if (r["run_dir"], m, "") not in scored]
# IG and occlusion on IG_SEEDS runs of each setting: those scored already, then the lowest seeds left here.
count = collections.Counter((r["method"], r["mask_fill"]) for r in runs if not missing(r))
todo = []
for r in runs:
    setting = (r["method"], r["mask_fill"])
    wanted = [("grad", "--cascade")] if (r["run_dir"], "grad", "conv1") not in scored else []
    ig = bool(missing(r)) and count[setting] < ig_seeds
    wanted += [(m, "") for m in missing(r)] if ig else []
    if wanted and not os.path.exists(os.path.join(r["run_dir"], "best.pt")):
        # Scoring reads best.pt, which is not committed: a run trained on another machine is left out.
        print(f"reproduce.sh: {r['run_dir']} has no best.pt here; left out of scoring", file=sys.stderr)
        continue
    count[setting] += ig
    todo += [(r["run_dir"], *w) for w in wanted]
for line in sorted(todo, key=lambda t: t[1] != "grad"):  # cascades first (a minute each), then IG and occlusion
    print(" ".join(field for field in line if field))
PY
done
