#!/usr/bin/env bash
# Bring the running set into this checkout, ready to commit: its CSV (copied under the CSV's shared lock, so
# never half a row) and the runs' saliency maps from the set's worktree, then the tables and figures redrawn by
# the command on tables.md's first line, the runs table and the check against the 20-epoch set printed. Run it
# from this checkout's root, with the worktree that slot.sh trains in:
#   results/synthetic-100-epochs/sync.sh /work/repro
set -euo pipefail
worktree=${1:?usage: results/synthetic-100-epochs/sync.sh WORKTREE}
dir=results/synthetic-100-epochs
python - "$worktree/$dir" "$dir" <<'PY'
import fcntl, filecmp, glob, os, shutil, sys
src, dst = sys.argv[1:]
with open(f"{src}/results.csv") as f:
    fcntl.flock(f, fcntl.LOCK_SH)  # train.py appends under LOCK_EX
    shutil.copyfile(f"{src}/results.csv", f"{dst}/results.csv")
copied = 0
for path in glob.glob(f"{src}/runs/*/saliency.npz") + glob.glob(f"{src}/runs/*/saliency-*/saliency.npz"):
    to = dst + path[len(src):]
    if not os.path.exists(to) or not filecmp.cmp(path, to, shallow=False):
        os.makedirs(os.path.dirname(to), exist_ok=True)
        shutil.copyfile(path, to)
        copied += 1
print(f"copied the CSV and {copied} saliency files")
PY
draw=$(head -1 "$dir/tables.md" | sed -n 's/^Drawn by `\(.*\)`\.$/\1/p')
eval "$draw" > /dev/null
python -m checks.runs_table "$dir/results.csv" --seeds 10
python -m checks.epoch_agreement results/synthetic/results.csv "$dir/results.csv" | tail -1
