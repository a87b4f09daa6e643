"""Check scripts behind REPRODUCTION.md: each recomputes or probes one of its claims and records nothing.

Run from the repository root as modules:

    python -m checks.bf16_bridge BF16_CSV FP32_CSV        # results/synthetic-bf16-bridge/verdict.txt
    python -m checks.rrr_confidence RUN_DIR ...           # why RRR's gradient map stays outside the mask
    python -m checks.scoring_variants {grad,ig,occlusion} RUN_DIR ...   # occlusion scored the authors' way

bf16_bridge reads only committed results CSVs; the other two need the runs' best.pt, which is not committed
(run them where the runs were trained). Each module's docstring names the result it checks.
"""
