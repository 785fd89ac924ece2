"""``mixbench ablation [CONFIG] [--seeds S ...] [--epochs E] [--only KEY ...] [--force]``: the seeded ablation.

    mixbench ablation configs/pipeline/ablation_synthetic.py          # 5 variants x 3 seeds, tables in results/
    mixbench ablation configs/pipeline/ablation_synthetic.py --seeds 0 --epochs 1 --results-dir /tmp/abl \
        --work-dir /tmp/abl/work                                      # a quick end-to-end check
"""

from __future__ import annotations

import argparse

DEFAULT_CONFIG = "configs/pipeline/ablation_synthetic.py"


def run(args: argparse.Namespace) -> int:
    from mixbench.ablation import run_ablation

    overrides = {"seeds": args.seeds, "epochs": args.epochs, "only": args.only, "work_dir": args.work_dir,
                 "results_dir": args.results_dir, "data_dir": args.data_dir}
    if args.data_dir is not None and not args.synthetic:
        overrides["synthetic"] = {}  # a given data folder is used as it is (falsy: not generated)
    run_ablation(args.config, overrides, force=args.force)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ablation", help="seeded pretraining ablation: kNN top-1 and Fig. 5 flatness, mean/spread")
    p.add_argument("config", nargs="?", default=DEFAULT_CONFIG, help=f"ablation config (default {DEFAULT_CONFIG})")
    p.add_argument("--seeds", type=int, nargs="+", help="override the config's seeds")
    p.add_argument("--epochs", type=int, help="override the config's schedule (a cut run for checking)")
    p.add_argument("--only", nargs="+", metavar="KEY", help="run only these variant keys")
    p.add_argument("--work-dir", help="override the config's work_dir (pretraining runs)")
    p.add_argument("--results-dir", help="override the config's results_dir (records and tables)")
    p.add_argument("--data-dir", help="folder holding imagenet/{train,val} (default: the config's)")
    p.add_argument("--synthetic", action="store_true", help="with --data-dir: generate the synthetic data there")
    p.add_argument("--force", action="store_true", help="retrain and re-evaluate even when records exist")
    p.set_defaults(func=run)
