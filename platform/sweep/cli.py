"""``incdyn sweep SPEC``: Ray Tune over the context ratio, query ratio and backbone.

incdyn sweep experiments/quickstart.yaml --context-ratios 0.5,0.7,0.9 --query-ratios 0.5,0.7,0.9
incdyn sweep SPEC --mode asha --num-samples 16 --context-ratios 0.3,0.5,0.7,0.9 --query-ratios 0.5,0.9
incdyn sweep SPEC --set training.steps=200 --max-concurrent 4
"""

from __future__ import annotations

import argparse
from typing import Any

from incdyn.platform.spec import add_spec_arguments


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``sweep`` subcommand to the ``incdyn`` parser's subparsers."""
    p = subparsers.add_parser(
        "sweep", help="Ray Tune sweep of a diffusion method's context/query ratios and backbone"
    )
    add_spec_arguments(p)
    p.add_argument(
        "--mode",
        choices=["grid", "asha"],
        default="grid",
        help="grid: every combination × seed (Table 6); asha: sampled, stopped early on val_loss",
    )
    p.add_argument("--method", help="the diffusion method to sweep (default: the first one)")
    p.add_argument("--context-ratios", type=_floats, metavar="R,...", help="default: the method's")
    p.add_argument("--query-ratios", type=_floats, metavar="R,...", help="default: the method's")
    p.add_argument("--backbones", type=_names, metavar="NAME,...", help="default: the method's")
    p.add_argument("--num-samples", type=int, default=8, help="asha: number of trials")
    p.add_argument(
        "--max-concurrent", type=int, help="at most this many trials at once (default: what fits)"
    )
    p.add_argument(
        "--verbose", action="store_true", help="show Ray's own logs and Tune's status table"
    )
    return p


def run(args: argparse.Namespace) -> int:
    """A bad spec, axis value or audit fails before Ray starts (a UserError: cli.main)."""
    from incdyn.platform.spec import load_spec
    from incdyn.platform.sweep.driver import run_sweep

    spec = load_spec(args.spec, args.overrides)
    results = run_sweep(
        spec,
        mode=args.mode,
        method=args.method,
        context_ratios=args.context_ratios,
        query_ratios=args.query_ratios,
        backbones=args.backbones,
        num_samples=args.num_samples if args.mode == "asha" else 1,
        max_concurrent=args.max_concurrent,
        verbose=args.verbose,
    )
    return 0 if all(r.best is not None for r in results) else 1
