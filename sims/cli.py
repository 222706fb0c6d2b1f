"""Command line: ``python -m sims run ...`` integrates one trajectory and saves it.

Example::

    python -m sims run --family equal --n 6 --T 8 --d 10 --seed 0 \\
        --method ngd --steps 3000 --lr 0.1 -o traj.csv
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from theory import InfeasibleError, LOSSES
from theory.atomic import check_output_path

from .data import FAMILIES, make_family
from .dynamics import run
from .options import DEFAULT_BETA, DEFAULT_LR, METHODS, NORMALIZE, PARAMS

__all__ = ["main", "build_parser"]

#: runs at least this long show a progress bar unless --no-progress
PROGRESS_STEPS = 20_000


def _record(text):
    if text in ("log", "all"):
        return text
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--record takes 'log', 'all' or an integer, got {text!r}")
    if k < 1:
        raise argparse.ArgumentTypeError(f"--record every k steps needs k >= 1, got {k}")
    return k


def _summary(fn):
    """First sentence of a family generator's docstring (the registry's description)."""
    return (fn.__doc__ or fn.__name__).strip().splitlines()[0].split(":")[0].rstrip(".")


class _Parser(argparse.ArgumentParser):
    """Usage errors as one ``error: ...`` line and exit status 2."""

    def error(self, message):
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def build_parser():
    """The argument parser (every option is documented in ``--help``)."""
    parser = _Parser(
        prog="python -m sims",
        description="Exact compiled GD / NGD / Polyak / momentum-NGD dynamics of one-layer "
                    "softmax attention.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    r = sub.add_parser(
        "run",
        help="integrate one trajectory on a synthetic family and save it",
        description="Integrate one trajectory on a seeded synthetic instance (docs/theory.md "
                    "§7) and save its metrics (docs/theory.md §5) to .csv or .npz; prints a "
                    "short final summary.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = r.add_argument_group("data")
    data.add_argument("--family", choices=sorted(FAMILIES), default="equal",
                      help="synthetic family: " + "; ".join(
                          f"{name}: {_summary(FAMILIES[name])}" for name in sorted(FAMILIES)))
    data.add_argument("--n", type=int, default=None, help="sequences (family default if omitted)")
    data.add_argument("--T", type=int, default=None, help="tokens per sequence (family default)")
    data.add_argument("--d", type=int, default=None, help="token dimension (family default)")
    data.add_argument("--seed", type=int, default=0, help="seed of the instance")
    data.add_argument("--attention", choices=["self", "cross"], default=None,
                      help="self-attention (query = first token) or cross-attention queries "
                           "(family default)")
    dyn = r.add_argument_group("dynamics")
    dyn.add_argument("--method", choices=METHODS, default="ngd", help="update rule")
    dyn.add_argument("--steps", type=int, default=3000, help="number of updates")
    dyn.add_argument("--lr", type=float, default=None,
                     help=f"step size (defaults: gd {DEFAULT_LR['gd']:g}, ngd and ngd_momentum "
                          f"{DEFAULT_LR['ngd']:g}); "
                          "for polyak a multiplier of the Polyak step (default 1)")
    dyn.add_argument("--beta", type=float, default=DEFAULT_BETA,
                     help="momentum of ngd_momentum, in [0, 1)")
    dyn.add_argument("--param", choices=PARAMS, default="W",
                     help="train W, W = K Q^T through (K, Q), or (u, W) jointly")
    dyn.add_argument("--loss", choices=LOSSES, default="logistic", help="loss function")
    dyn.add_argument("--normalize", choices=NORMALIZE, default="global",
                     help="NGD / Polyak normalisation by the whole gradient or per block "
                          "((u, W) or (K, Q))")
    dyn.add_argument("--init", choices=["zeros", "random"], default="zeros",
                     help="W0 (and u0 for joint): zeros, or N(0, init-scale^2 / d) entries; "
                          "(K0, Q0) are always small random")
    dyn.add_argument("--init-scale", type=float, default=0.1, help="scale of --init random")
    dyn.add_argument("--init-seed", type=int, default=0, help="seed of the random initialisation")
    out = r.add_argument_group("output")
    out.add_argument("--record", type=_record, default="log",
                     help="recorded iterations: 'log' (log-spaced), 'all', or every k steps")
    out.add_argument("--num-records", type=int, default=200, help="about this many for --record log")
    out.add_argument("--store-params", action="store_true",
                     help="also save W (and u) at every recorded iteration (.npz recommended)")
    out.add_argument("--no-progress", action="store_true",
                     help=f"no progress bar (shown by default from {PROGRESS_STEPS} steps)")
    out.add_argument("-o", "--output", required=True, help="output file, .csv or .npz")
    return parser


def _family_kwargs(args):
    kw = {"seed": args.seed}
    for name in ("n", "T", "d", "attention"):
        value = getattr(args, name)
        if value is not None:
            kw[name] = value
    return kw


def main(argv=None):
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_output_path(args.output)  # before the run, not after it
    except (OSError, TypeError) as exc:
        parser.error(str(exc))
    if not args.output.lower().endswith((".csv", ".npz")):
        parser.error(f"--output must end in .csv or .npz, got {args.output!r}")
    try:
        problem = make_family(args.family, **_family_kwargs(args))
        d = problem.d
        W0 = u0 = None
        if args.init == "random":
            rng = np.random.default_rng(args.init_seed)
            scale = args.init_scale / np.sqrt(d)
            if args.param != "kq":
                W0 = rng.standard_normal((d, d)) * scale
            if args.param == "joint":
                u0 = rng.standard_normal(d) * scale
        progress = not args.no_progress and args.steps >= PROGRESS_STEPS
        tr = run(problem, args.method, args.steps, lr=args.lr, W0=W0, record=args.record,
                 loss=args.loss, param=args.param, u0=u0, normalize=args.normalize,
                 num_records=args.num_records, progress=progress, seed=args.init_seed,
                 store_params=args.store_params, beta=args.beta)
        tr.save(args.output)
    except (ValueError, TypeError, ArithmeticError, OSError) as exc:  # TieError included
        kind = "infeasible max-margin problem" if isinstance(exc, InfeasibleError) else "error"
        print(f"{kind}: {exc}", file=sys.stderr)
        return 2
    on_opt = int(np.sum(tr.attn_argmax_final == tr.opt))
    print(f"{args.method} {args.param} {args.loss}, {args.steps} steps, lr {tr.lr:g} -> {args.output}")
    print(f"final: loss {tr.loss[-1]:.6g}  excess {tr.excess[-1]:.3g} (log {tr.log_excess[-1]:.6g})  "
          f"corr {tr.corr[-1]:.8f}  s_opt_min {tr.s_opt_min[-1]:.6g}  "
          f"attending to opt: {on_opt}/{problem.n}")
    if tr.u_corr is not None:
        print(f"decoder: ||u|| {tr.u_norm[-1]:.6g}  u_corr {tr.u_corr[-1]:.8f}")
    return 0
