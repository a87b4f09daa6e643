#!/usr/bin/env bash
# One CPU slot of the set, for a machine that may not outlive the session: trains the runs named, one after
# another, each followed at once by its gradient cascade (scoring reads best.pt, which is not committed).
#   slot.sh SETTING:SEED ...   SETTING: baseline masked masked-zero actdiff adversarial gradmask rrr
# Run two (one per core), from the set's pinned worktree, each with the runs that fit in the time left
# (`python -m checks.runs_table results/synthetic-100-epochs/results.csv --seeds 10 --fit SECONDS` lists them);
# an interrupted run resumes from its checkpoint on the same machine and starts again on a new one:
#   cp /work/main/results/synthetic-100-epochs/slot.sh /work/ && cd /work/repro && \
#     nohup setsid bash /work/slot.sh gradmask:6 rrr:6 >> /work/slot-1.log 2>&1 &
# Each run is the one reproduce.sh would train (its seeds phase, the same flags), so the set is the same
# whichever of the two trained it; reproduce.sh afterwards finds the runs finished and scored.
set -euo pipefail
CSV=${CSV:-results/synthetic-100-epochs/results.csv}
for run in "$@"; do
  setting=${run%:*} seed=${run#*:}
  method=${setting%-zero} fill=shuffle
  [ "$setting" = masked-zero ] && fill=zero
  echo "$(date -u +%FT%TZ) train $setting seed $seed"
  # --seeds N trains every seed up to N that has no final row: seeds below N must be finished (or wanted)
  OMP_NUM_THREADS=1 python sweep.py --phase seeds --dataset synthetic --ratios 1.0 --methods "$method" \
      --mask-fills "$fill" --seeds "$seed" --epochs 100 --patience 100 --jobs 1 --results "$CSV"
  dir=results/synthetic-100-epochs/runs/synthetic-r1.0-$setting-s$seed
  scored=$(python - "$CSV" "$dir" <<'PY'
import sys, results
print(any(r["run_dir"] == sys.argv[2] and r["saliency"] == "grad" and r["randomized"]
          for r in results.read_rows(sys.argv[1], kind="saliency")))
PY
)
  if [ "$scored" = False ] && [ -f "$dir/best.pt" ]; then
    echo "$(date -u +%FT%TZ) cascade $dir"
    OMP_NUM_THREADS=1 python saliency.py --run "$dir" --saliency grad --cascade --results "$CSV"
  fi
done
echo "$(date -u +%FT%TZ) slot done"
