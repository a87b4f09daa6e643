#!/usr/bin/env bash
# The v2 synthetic reproduction (issue 13), resumable: rerun it and it continues where it stopped.
# Seed-major, so an interrupted run leaves whole seeds: seed 1 of all 7 settings, then seed 2, ...
# Seeds 1-3 are also scored with integrated gradients and occlusion (about 7 CPU-minutes per run).
# JOBS=2 runs two train.py at once (one thread each); OMP_NUM_THREADS=1 keeps each on its core.
set -euo pipefail
cd "$(dirname "$0")/../.."
CSV=results/synthetic/results.csv
for n in 1 2 3 4 5 6 7 8 9 10; do
  OMP_NUM_THREADS=1 python sweep.py --phase seeds --dataset synthetic --methods all --mask-fills shuffle zero \
      --seeds "$n" --epochs 20 --patience 20 --jobs "${JOBS:-1}" --results "$CSV"
  if [ "$n" -le 3 ]; then
    for run in results/synthetic/runs/*-s"$n"; do
      for method in ig occlusion; do
        # skip what is recorded: a saliency row of this method for this run directory
        if ! python -c "import results, sys; sys.exit(not any(r['saliency'] == '$method' for r in
                        results.read_rows('$CSV', kind='saliency', run_dir='$run')))"; then
          OMP_NUM_THREADS=1 python saliency.py --run "$run" --saliency "$method" --results "$CSV"
        fi
      done
    done
  fi
done
