"""Every finished run of one setting, seed by seed: the table under REPRODUCTION.md's "Status" of the 100-epoch
set. A cell is one run's test AUC / box_effect / selected epoch / seconds (as its final row says; "–" where the
run has not finished), a row per method in the tables' order, a column per seed; under it, how many runs have
finished and their seconds summed. With --seeds N, also how many runs of seeds 1-N are still to finish and what
they would take at each setting's median seconds so far (a setting with no finished run is not estimated).
With --fit SECONDS as well, which of those runs each of --slots slot.sh can train within SECONDS at those
medians: a setting's seeds in order and in one slot (slot.sh trains them in the order given), the longest
first, as its command lines.

    python -m checks.runs_table results/synthetic-100-epochs/results.csv [--dataset synthetic] [--ratio 1.0] \
        [--seeds 10 [--fit 8000 [--slots 2]]]
"""
import argparse
import sys

import numpy as np
import pandas as pd

import collect
import errors
import plots
import results


def cell(run):
    """'AUC / box_effect / epoch / seconds' of one run; box_effect with one significant digit below 0.01."""
    auc, box, epoch, seconds = (pd.to_numeric(run[c], errors="coerce")
                                for c in ("test_auc", "box_effect", "selected_epoch", "seconds"))
    box_text = "–" if np.isnan(box) else (f"{box:.1g}" if 0 < box < 0.005 else f"{box:.2f}")
    return f"{auc:.2f} / {box_text} / {epoch:.0f} / {seconds:,.0f}"


def load(csv, dataset, ratio):
    """The finished runs of one dataset and ratio, as the tables read them; ResultsError when there are none."""
    args = plots.parse_args(["--results", csv, "--dataset", dataset, "--saliency", "grad"])  # plots.py's defaults
    runs = collect.at(collect.load(args)[0], dataset, ratio)
    if runs.empty:
        raise results.ResultsError(f"{csv}: no finished run of {dataset} ratio {collect.fmt_ratio(ratio)}")
    return runs


def table(runs, up_to=None):
    """The markdown table of load()'s runs, and with up_to, what is left of seeds 1-up_to."""
    seeds = sorted(int(s) for s in runs["seed"].unique())
    by_run = {(r["variant"], int(r["seed"])): cell(r) for _, r in runs.iterrows()}
    lines = ["| setting | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|---|" + "---|" * len(seeds)]
    lines += [f"| {collect.LABELS[v]} | " + " | ".join(by_run.get((v, s), "–") for s in seeds) + " |"
              for v in collect.VARIANTS if (runs["variant"] == v).any()]
    seconds = pd.to_numeric(runs["seconds"], errors="coerce").sum()
    lines += ["", f"{len(runs)} finished runs; their seconds summed: {seconds:,.0f} ({seconds / 3600:.1f} hours of "
                  f"one run at a time)"]
    if up_to is not None:
        lines.append(left(runs, up_to))
    return "\n".join(lines)


def left(runs, up_to):
    """'K runs of seeds 1-N to finish; at each setting's median so far about S s (H hours of one run at a time)',
    counting only the settings that have a finished run."""
    seconds = pd.to_numeric(runs["seconds"], errors="coerce")
    todo, estimate = 0, 0.0
    for variant, done in runs.groupby("variant"):
        n = len(set(range(1, up_to + 1)) - {int(s) for s in done["seed"]})
        todo += n
        estimate += n * seconds[done.index].median()
    return (f"{todo} runs of seeds 1-{up_to} to finish; at each setting's median seconds so far, about "
            f"{estimate:,.0f} ({estimate / 3600:.1f} hours of one run at a time)")


def plan(runs, up_to, seconds, slots):
    """For each slot, the runs of seeds 1-up_to left that fit in `seconds`, as slot.sh names them
    (["rrr:4", "adversarial:6"], ...): each time the longest of each setting's next seed that fits a slot, in
    the slot that holds its setting's earlier seeds (or the slot with the most time left)."""
    median = pd.to_numeric(runs["seconds"], errors="coerce").groupby(runs["variant"]).median()
    queue = {v: sorted(set(range(1, up_to + 1)) - {int(s) for s in runs.loc[runs["variant"] == v, "seed"]})
             for v in median.index}
    room, chosen, home = [float(seconds)] * slots, [[] for _ in range(slots)], {}
    while True:
        fits = [(median[v], v, slot) for v, seeds in queue.items() if seeds
                for slot in ([home[v]] if v in home else [max(range(slots), key=room.__getitem__)])
                if median[v] <= room[slot]]
        if not fits:
            return chosen
        cost, v, slot = max(fits, key=lambda f: (f[0], -collect.VARIANTS.index(f[1])))
        room[slot] -= cost
        home[v] = slot
        chosen[slot].append(f"{v.replace('_', '-')}:{queue[v].pop(0)}")


def main(argv=None):
    parser = errors.ArgumentParser(prog="python -m checks.runs_table", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", help="a results CSV")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--ratio", type=float, default=1.0)
    parser.add_argument("--seeds", type=int, metavar="N", help="also say what is left of seeds 1-N")
    parser.add_argument("--fit", type=float, metavar="SECONDS",
                        help="with --seeds: the runs left that each slot.sh can train within SECONDS")
    parser.add_argument("--slots", type=int, default=2, help="with --fit: how many slot.sh (default 2)")
    args = parser.parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: must be at least 1")
    if args.fit is not None and (args.seeds is None or args.fit <= 0 or args.slots < 1):
        parser.error("--fit needs --seeds N, a positive number of seconds and --slots of at least 1")
    try:
        runs = load(args.csv, args.dataset, args.ratio)
        print(table(runs, args.seeds))
        if args.fit is not None:
            for slot in plan(runs, args.seeds, args.fit, args.slots):
                print("slot.sh " + " ".join(slot) if slot else "slot.sh (nothing fits)")
    except results.ResultsError as e:
        return errors.report(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
