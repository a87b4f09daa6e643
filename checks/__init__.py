"""Check scripts behind REPRODUCTION.md and docs/speed.md: each recomputes, probes or measures one of their claims
and records nothing in the committed results.

Run from the repository root as modules:

    python -m checks.bf16_bridge BF16_CSV FP32_CSV        # results/synthetic-bf16-bridge/verdict.txt
    python -m checks.rrr_confidence RUN_DIR ...           # why RRR's gradient map stays outside the mask
    python -m checks.scoring_variants {grad,ig,occlusion} RUN_DIR ...   # occlusion scored the authors' way
    python -m checks.gpu_epochs --out DIR                 # X-ray epoch times and memory on a GPU (docs/speed.md)
    python -m checks.runs_table CSV                       # every finished run of a setting, seed by seed
    python -m checks.epoch_agreement CSV CSV              # same seed, same numbers, in the epochs two files share
    python -m checks.shortcut_precision CSV [--root DIR]  # the swing's two AUCs ranked alike, from best.pt

bf16_bridge, runs_table and epoch_agreement read only results CSVs; rrr_confidence, scoring_variants and
shortcut_precision need the runs' best.pt, which is not committed (run them where the runs were trained); gpu_epochs
writes stand-ins and trains on them.
Each module's docstring names the result it checks.
"""
