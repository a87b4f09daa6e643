#!/usr/bin/env bash
# The set's remaining runs on a lent GPU (DEVELOPERS.md: one H200, 15 minutes of device time in all, at most
# 10 a command), with the code of the set's commit, several runs sharing the GPU, each run's cascade scored
# as soon as it has finished. Four steps, from this checkout's root:
#   1 here:   results/synthetic-100-epochs/gpu.sh pack /work/repro
#             (refuses while slot.sh trains there: stop the slots first, or both would train the same runs)
#   2 device: run(command="bash .gpu/gpu.sh run 570", carry=[".gpu"], timeout_s=600)
#             (SETTINGS="--methods ... --mask-fills ..." in front: only those settings, the sweep's flags)
#   3 here:   results/synthetic-100-epochs/gpu.sh merge /work/.device/.../set.tar.gz /work/repro
#   4 here:   results/synthetic-100-epochs/sync.sh /work/repro, and commit
# With device time left, steps 1-3 again continue the set: a warm machine goes on with its runs, a fresh one
# starts from the merged CSV. Between 1 and 3 the tracked results/ are out of git's index (step 1 says why);
# merge puts them back: commit nothing in between.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CSV=results/synthetic-100-epochs/results.csv
COMMIT=${COMMIT:-b4d27f7}  # the set's commit (REPRODUCTION.md)
PYTHON=${PYTHON:-python3}  # the device's python3 holds its torch
SETTINGS=${SETTINGS:---methods all --mask-fills shuffle zero}  # fewer, where the CPUs here train the others
EPOCHS=${EPOCHS:-100}      # the set's protocol; to try the steps on a CPU, set DEVICE=cpu EPOCHS=1
                           # EXTRA="--n-train 32 --n-eval 8" (EXTRA: more flags for every run)
usage() { echo "usage: gpu.sh pack WORKTREE | run SECONDS [JOBS] | merge TARBALL WORKTREE" >&2; exit 2; }
fail() { echo "error: $*" >&2; exit 2; }

copy_csv() {  # never half a row: train.py appends under LOCK_EX
  "$PYTHON" - "$1" "$2" <<'PY'
import fcntl, shutil, sys
with open(sys.argv[1]) as f:
    fcntl.flock(f, fcntl.LOCK_SH)
    shutil.copyfile(sys.argv[1], sys.argv[2])
PY
}

hide_results() {  # what a device call sends must be under 64 MiB, and the tracked results alone are more
  mkdir -p .git/info
  grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
  grep -qx '/results/' .git/info/exclude || echo '/results/' >> .git/info/exclude
  git rm -r -q --cached results
}

unhide_results() {
  git reset -q -- results
  sed -i '\#^/results/$#d' .git/info/exclude
}

case ${1:-} in
pack)
  worktree=${2:?$(usage)}
  [ -f "$worktree/$CSV" ] || fail "$worktree/$CSV not found: give the set's worktree (REPRODUCTION.md)"
  if pgrep -f "$worktree/train.py" > /dev/null; then
    fail "runs are training in $worktree: stop them first (pkill -f slot.sh; pkill -f $worktree/train.py)," \
         "or the GPU trains them too"
  fi
  [ -z "$(git status --porcelain -- results)" ] || fail "results/ has changes: commit them before pack hides results/"
  set=$(mktemp -d)/set
  mkdir -p "$set/results/synthetic-100-epochs" .gpu
  # The code (results/ holds a few scripts too) and, for the rows' git_commit to say $COMMIT, the commit
  # and its trees, without the results' data.
  git archive "$COMMIT" | tar -x -C "$set"
  find "$set/results" -type f ! -name '*.py' -delete
  git -C "$set" init -q
  { git rev-parse "$COMMIT^{commit}"
    git ls-tree -r -t "$COMMIT" | awk '$2 == "tree" || $4 !~ /^results\// || $4 ~ /\.py$/ {print $3}'
    git rev-parse "$COMMIT^{tree}"; } | git pack-objects -q --stdout | git -C "$set" unpack-objects -q
  git rev-parse "$COMMIT^{commit}" > "$set/.git/HEAD"
  git -C "$set" read-tree "$COMMIT"
  copy_csv "$worktree/$CSV" "$set/$CSV"
  tar -czf .gpu/set.tar.gz -C "$(dirname "$set")" set
  cp "$here/gpu.sh" .gpu/  # results/, where this script lives, stays here
  rm -rf "$(dirname "$set")"
  hide_results
  echo "packed .gpu/set.tar.gz ($(du -k .gpu/set.tar.gz | cut -f1) KiB): $COMMIT's code and the set's CSV"
  sends=$(git ls-files -z | du -ch --files0-from=- | tail -1 | cut -f1)
  echo "results/ is out of git's index until merge; the device call sends $sends"
  ;;

run)  # on the device, from the copied checkout: start the set once (a warm machine keeps it), wait, pack
  seconds=${2:?$(usage)} jobs=${3:-10}  # ten trained 26 runs in 10.5 minutes (REPRODUCTION.md)
  start=$(date +%s) set=/tmp/gpu-set/set
  if [ ! -d "$set" ]; then
    mkdir -p /tmp/gpu-set && tar -xzf .gpu/set.tar.gz -C /tmp/gpu-set
    cd "$set"
    wc -l < "$CSV" > packed.lines  # the rows before this machine's
    nvidia-smi -L || true
    "$PYTHON" -c "import torch, results
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'commit', results.git_commit())"
    # --device cuda: a machine without one fails at once instead of training on its CPU (a try here: DEVICE=cpu)
    setsid nohup bash -c "OMP_NUM_THREADS=1 $PYTHON sweep.py --phase seeds --dataset synthetic --ratios 1.0 \
        $SETTINGS --seeds 10 --epochs $EPOCHS --patience $EPOCHS --jobs $jobs \
        --results $CSV --device ${DEVICE:-cuda} ${EXTRA:-}; touch trained" > sweep.log 2>&1 < /dev/null &
    setsid nohup bash "$here/gpu.sh" score > score.log 2>&1 < /dev/null &
    echo "started $(date -u +%FT%TZ): $jobs runs at a time, their cascades beside them"
  fi
  cd "$set"
  while [ ! -f scored ] && (( $(date +%s) - start < seconds )); do sleep 5; done
  "$PYTHON" - "$CSV" "$(cat packed.lines)" <<'PY'
import collections, statistics, sys, results
rows = results.read_rows(sys.argv[1])[int(sys.argv[2]) - 1:]  # the header is a line, not a row
epochs = collections.defaultdict(list)
for r in rows:
    if r["kind"] == "epoch":
        epochs[r["run_id"]].append(float(r["seconds"]))
finals = {r["run_id"]: r for r in rows if r["kind"] == "final"}
print(f"{len(finals)} runs finished here, {len(set(epochs) - set(finals))} under way"
      f" (at epochs {sorted(len(e) for k, e in epochs.items() if k not in finals)})")
for run_id, r in sorted(finals.items()):
    print(f"  {r['run_dir']}: test AUC {float(r['test_auc']):.3f}, {float(r['seconds']):.0f} s")
steps = [b - a for e in epochs.values() for a, b in zip(e, e[1:])]
if steps:
    print(f"median seconds an epoch, all runs sharing the GPU: {statistics.median(steps):.2f}")
PY
  tail -n 3 sweep.log score.log
  out=${OUT:-/tmp/gpu-out}
  mkdir -p "$out"
  copy_csv "$CSV" results.csv.copy
  find results/synthetic-100-epochs/runs -name saliency.npz 2>/dev/null > files.list || true
  tar -czf "$out/set.tar.gz" --transform "s#^results.csv.copy#$CSV#" results.csv.copy sweep.log score.log \
      -T files.list
  state=$([ -f scored ] && echo "the set is done" || echo "still running: the next call continues")
  echo "packed $out/set.tar.gz; $state"
  ;;

score)  # on the device, in the background: each finished run's cascade, two at a time, until training ends
  cd /tmp/gpu-set/set
  touch tried.list  # each run is scored once: a failure goes to score.log, not round again
  while :; do
    done_training=$([ -f trained ] && echo 1 || echo 0)
    "$PYTHON" - "$CSV" <<'PY' > todo.list
import os, sys, results
tried = set(open("tried.list").read().split())
for r in results.read_rows(sys.argv[1], kind="final"):
    if r["status"] == "ok" and r["run_dir"] not in tried and os.path.exists(os.path.join(r["run_dir"], "best.pt")):
        print(r["run_dir"])
PY
    cat todo.list >> tried.list
    xargs -r -P 2 -I{} sh -c "OMP_NUM_THREADS=1 $PYTHON saliency.py --run {} --saliency grad --cascade \
        --results $CSV --device ${DEVICE:-cuda} > /dev/null 2>> score.log" < todo.list || true
    if [ "$done_training" = 1 ] && [ ! -s todo.list ]; then touch scored; exit 0; fi
    sleep 10
  done
  ;;

merge)  # here: the device's rows appended to the worktree's CSV (those it has are skipped), its maps copied
  tarball=${2:?$(usage)} worktree=${3:?$(usage)}
  [ -f "$tarball" ] || fail "$tarball not found: give the set.tar.gz the device call brought back"
  [ -n "$(git ls-files -- results | head -1)" ] || unhide_results  # first, whatever happens next
  tmp=$(mktemp -d)
  tar -xzf "$tarball" -C "$tmp"
  "$PYTHON" - "$tmp/$CSV" "$worktree/$CSV" <<'PY'
import csv, fcntl, io, sys
new, into = sys.argv[1:]
with open(new) as f:
    header, *rows = f.read().splitlines(keepends=True)
if len(list(csv.reader(io.StringIO("".join(rows))))) != len(rows):  # rows are compared line by line
    print(f"error: {new} has a row of several lines; merge it by hand", file=sys.stderr)
    sys.exit(2)
with open(into, "r+") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    have = f.read().splitlines(keepends=True)
    if have[0] != header:
        print(f"error: {new} and {into} have different columns: pack and run from the set's commit", file=sys.stderr)
        sys.exit(2)
    known = set(have)
    added = [r for r in rows if r not in known]
    f.writelines(added)
print(f"{len(added)} rows added to {into} ({len(rows) - len(added)} it had)")
PY
  (cd "$tmp" && find results -name saliency.npz) | while read -r f; do
    [ -e "$worktree/$f" ] || { mkdir -p "$(dirname "$worktree/$f")"; cp "$tmp/$f" "$worktree/$f"; }
  done
  tail -n 5 "$tmp/sweep.log" "$tmp/score.log"
  rm -rf "$tmp"
  echo "results/ is back in git's index; now sync.sh $worktree"
  ;;
*) usage ;;
esac
