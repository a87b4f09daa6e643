#!/usr/bin/env bash
# The v2 synthetic reproduction (issue 13), resumable: rerun it and it continues where it stopped.
# Seed-major in pairs: seeds 1-2 of all 7 settings, then 3-4, ... `sweep.py --seeds N` runs every seed
# up to N that has no final row yet, JOBS (default 2) at a time, one thread each.
# Seeds 1-3 are also scored with integrated gradients and occlusion (about 7 CPU-minutes per run).
set -euo pipefail
cd "$(dirname "$0")/../.."
CSV=results/synthetic/results.csv
for n in 2 4 6 8 10; do
  OMP_NUM_THREADS=1 python sweep.py --phase seeds --dataset synthetic --methods all --mask-fills shuffle zero \
      --seeds "$n" --epochs 20 --patience 20 --jobs "${JOBS:-2}" --results "$CSV"
  for run in results/synthetic/runs/*-s[123]; do
    for method in ig occlusion; do
      # skip what is recorded: a saliency row of this method for this run directory
      if ! python -c "import results, sys; sys.exit(not any(r['saliency'] == '$method' for r in
                      results.read_rows('$CSV', kind='saliency', run_dir='$run')))"; then
        echo "$run $method"
      fi
    done
  done | xargs -r -n 2 -P "${JOBS:-2}" sh -c \
      'OMP_NUM_THREADS=1 python saliency.py --run "$0" --saliency "$1" --results '"$CSV"
done
