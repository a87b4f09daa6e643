#!/usr/bin/env bash
# Scores each finished run's gradient cascade while the next runs train, so that a run's best.pt
# (not committed) is used before the machine goes away. reproduce.sh does the same scoring, but only
# once a whole batch of seeds has finished, which on a machine that lasts a session is often too late.
# Start it after reproduce.sh (it stops when reproduce.sh does), from the same pinned worktree, so the set's
# code scores the set, and from a copy, since bash reads a script as it runs and main's copy may change:
#   cp /work/main/results/synthetic-100-epochs/score-finished.sh /work/ && cd /work/repro && \
#     nohup setsid bash /work/score-finished.sh >> /work/score.log 2>&1 &
# It acts only while more than five epochs remain in every running train.py, so that reproduce.sh's own
# listing, made when the batch ends, never sees a cascade half recorded (which would score it twice).
set -euo pipefail
CSV=${CSV:-results/synthetic-100-epochs/results.csv}
while pgrep -f "bash results/synthetic/reproduce.sh" > /dev/null; do
  run=$(python - "$CSV" <<'PY'
import os, subprocess, sys, results
csv = sys.argv[1]
rows = results.read_rows(csv)
training = [a.split("--out ")[1].split()[0] for a in
            subprocess.run(["pgrep", "-af", "train.py"], capture_output=True, text=True).stdout.splitlines()
            if "--out " in a]
last = {}
for r in rows:
    if r["kind"] == "epoch" and r["epoch"]:
        last[r["run_dir"]] = max(last.get(r["run_dir"], 0), int(r["epoch"]))
# The batch may end soon: leave the scoring to reproduce.sh, whose listing comes right after.
if not training or any(last.get(d, 0) >= 95 for d in training):
    sys.exit()
cascaded = {r["run_dir"] for r in rows if r["kind"] == "saliency" and r["saliency"] == "grad" and r["randomized"]}
for r in rows:
    if (r["kind"] == "final" and r["selected_epoch"] and r["run_dir"] not in cascaded
            and os.path.exists(os.path.join(r["run_dir"], "best.pt"))):
        print(r["run_dir"])
        break
PY
)
  if [ -n "$run" ]; then
    echo "$(date -u +%FT%TZ) cascade $run"
    OMP_NUM_THREADS=1 python saliency.py --run "$run" --saliency grad --cascade --results "$CSV"
  else
    sleep 300
  fi
done
