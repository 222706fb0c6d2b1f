"""Command line: ``python -m theory {svm,random,demo}``.

``svm``     solve the W-SVM of an instance file and print (or write) the result;
``random``  write a synthetic instance of one of the families of :mod:`theory.families`;
``demo``    solve an equal-score instance, cross-check it, and list the locally optimal
            selections of a small random instance.

Errors (unreadable or invalid file, unwritable output, infeasible problem, tied optimal
token, bad option) print one ``error: ...`` line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile

import numpy as np

from .atomic import atomic_path, check_output_path
from .errors import InfeasibleError, SolverError, TieError
from .families import FAMILIES, equal_score, general_random, make_family
from .problem import AttentionProblem
from .selection import locally_optimal_selections
from .svm import METHODS, NORMS, solve_wsvm

__all__ = ["main", "summary", "write_solution"]


def summary(sol, problem=None) -> str:
    """Readable multi-line summary of a :class:`~theory.svm.MarginSolution`."""
    lines = [
        f"W-SVM ({sol.norm} norm): ||W|| = {sol.norm_value:.10g}, margin = 1/||W|| = "
        f"{sol.margin:.10g}",
        f"status {sol.status}, method {sol.method}, time {sol.solve_time:.4g} s, "
        f"KKT residual {sol.kkt_residual:.3g}",
        f"rank(W) = {sol.rank()} (singular values above 1e-6 of the largest)",
    ]
    if problem is not None:
        lines.insert(0, f"instance: n={problem.n}, T={problem.T}, d={problem.d}, "
                        f"{'self' if problem.self_attention else 'cross'}-attention")
    lines.append("sequence  selected  support tokens")
    for i, (s, toks) in enumerate(zip(sol.selection, sol.support_tokens())):
        lines.append(f"{i:8d}  {int(s):8d}  {toks if toks else '-'}")
    return "\n".join(lines)


def _as_dict(sol, problem):
    return {
        "n": problem.n, "T": problem.T, "d": problem.d,
        "norm": sol.norm, "norm_value": sol.norm_value, "margin": sol.margin,
        "status": sol.status, "method": sol.method, "solve_time": sol.solve_time,
        "kkt_residual": sol.kkt_residual, "kkt": sol.kkt, "rank": sol.rank(),
        "selection": sol.selection.tolist(), "support_tokens": sol.support_tokens(),
    }


def write_solution(path, sol) -> None:
    """Write ``W, margins, support, dual, dual_exponent, selection, norm_value, kkt_residual``
    and ``norm`` to ``.npz``, atomically.

    Raises
    ------
    FileNotFoundError, IsADirectoryError, TypeError
        As :func:`theory.atomic.check_output_path`.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, W=sol.W, margins=sol.margins, support=sol.support, dual=sol.dual,
                 dual_exponent=sol.dual_exponent, selection=sol.selection,
                 norm_value=sol.norm_value, kkt_residual=sol.kkt_residual, norm=sol.norm)


def _load(path):
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a folder, not an instance file")
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not an .npz archive")
    try:
        return AttentionProblem.load(path)
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{path}: not a readable .npz instance ({exc})") from None
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{path}: {exc}") from None


def _parse_selection(text):
    try:
        return np.array([int(v) for v in text.split(",")], dtype=np.int64)
    except ValueError:
        raise ValueError(f"--selection must be comma-separated integers, got {text!r}") from None


def _cmd_svm(args):
    if args.output:
        check_output_path(args.output)  # fail before the solve, not after
    problem = _load(args.instance)
    sel = None if args.selection is None else _parse_selection(args.selection)
    sol = solve_wsvm(problem, sel, norm=args.norm, method=args.method, tol=args.tol)
    if args.output:
        write_solution(args.output, sol)
    if args.json:
        print(json.dumps(_as_dict(sol, problem)))
    else:
        print(summary(sol, problem))
        if args.output:
            print(f"wrote {args.output}")
    return 0


def _cmd_random(args):
    check_output_path(args.output)
    kwargs = dict(n=args.n, T=args.T, seed=args.seed)
    if args.d is not None:
        kwargs["d"] = args.d
    if args.attention is not None:
        kwargs["attention"] = args.attention
    problem = make_family(args.kind, **kwargs)
    problem.save(args.output)
    print(f"wrote {args.output}: {problem!r}, family {args.kind}, seed {args.seed}")
    return 0


def _cmd_demo(args):
    p = equal_score(n=6, T=8, d=10, seed=args.seed)
    print("== Global W-SVM of an equal-score instance ==")
    sol = solve_wsvm(p)
    print(summary(sol, p))
    check = solve_wsvm(p, method="cvxpy")
    rel = np.linalg.norm(check.W - sol.W) / np.linalg.norm(sol.W)
    print(f"cross-check with {check.method}: relative difference of W {rel:.2g}, "
          f"KKT residual {check.kkt_residual:.2g}")
    nuc = solve_wsvm(p, norm="nuc")
    print(f"nuclear-norm SVM: ||W||_* = {nuc.norm_value:.6g} (Frobenius solution has "
          f"||W||_* = {np.linalg.svd(sol.W, compute_uv=False).sum():.6g}), rank {nuc.rank()}, "
          f"KKT residual {nuc.kkt_residual:.2g}")
    q = general_random(n=4, T=4, d=4, seed=args.seed)
    print("\n== Locally optimal selections of a general-random instance (n=4, T=4, d=4) ==")
    try:
        print(f"optimal tokens opt = {q.opt.tolist()}")
    except TieError as exc:
        print(f"(no unique optimum: {exc})")
    found = locally_optimal_selections(q)
    print(f"{len(found)} locally optimal selection(s) out of {q.T ** q.n}:")
    for s in found:
        tag = " (global)" if np.array_equal(s, q.opt) else ""
        print(f"  {s.tolist()}{tag}: margin {solve_wsvm(q, s).margin:.6g}")
    return 0


def _positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return v


class _Parser(argparse.ArgumentParser):
    """Usage errors as one ``error: ...`` line and exit status 2, like every other error."""

    def error(self, message):
        self.exit(2, f"error: {self.prog}: {message}\n")


def _family_help():
    """One clause per family: its name and the first line of its docstring."""
    return "; ".join(f"{name}: {(fn.__doc__ or name).strip().splitlines()[0].rstrip('.')}"
                     for name, fn in FAMILIES.items())


def _parser():
    ap = _Parser(
        prog="python -m theory",
        description="Max-margin token-selection SVMs of one-layer attention (docs/theory.md "
                    "§2). Errors exit with status 2.",
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("svm", help="solve the W-SVM of an instance file",
                       description="Solve the W-SVM of INSTANCE.npz (keys X, y, u and "
                                   "optionally z) and print a summary.")
    s.add_argument("instance", metavar="INSTANCE.npz", help="instance written by "
                   "AttentionProblem.save or 'python -m theory random'")
    s.add_argument("--norm", choices=NORMS, default="fro",
                   help="norm to minimise: Frobenius (default) or nuclear")
    s.add_argument("--selection", metavar="I0,I1,...",
                   help="comma-separated token index per sequence (default: the optimal tokens)")
    s.add_argument("--method", choices=METHODS, default="auto",
                   help="solver: structured active-set (Frobenius), cvxpy, or auto (default)")
    s.add_argument("--tol", type=float, default=1e-8,
                   help="KKT tolerance for status 'optimal' (default 1e-8)")
    s.add_argument("-o", "--output", metavar="OUT.npz",
                   help="write W, margins, support, dual, selection, norm_value, kkt_residual")
    s.add_argument("--json", action="store_true",
                   help="print the summary as one JSON object instead of text")
    s.set_defaults(func=_cmd_svm)

    r = sub.add_parser("random", help="write a synthetic instance (docs/theory.md §7 families)",
                       description="Write a seeded synthetic instance of a family of "
                                   "docs/theory.md §7.")
    r.add_argument("--kind", choices=sorted(FAMILIES), required=True, help=_family_help())
    r.add_argument("--n", type=_positive_int, default=6, help="sequences (default 6)")
    r.add_argument("--T", type=_positive_int, default=8, help="tokens per sequence (default 8)")
    r.add_argument("--d", type=_positive_int, default=None,
                   help="token dimension (default: the family's, n*T for overparam)")
    r.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    r.add_argument("--attention", choices=("self", "cross"), default=None,
                   help="query type (default: the family's)")
    r.add_argument("-o", "--output", metavar="X.npz", required=True, help="file to write")
    r.set_defaults(func=_cmd_random)

    d = sub.add_parser("demo", help="solve and cross-check a W-SVM, list locally optimal "
                                    "selections",
                       description="Build an equal-score instance, solve its W-SVM (checked "
                                   "against cvxpy and the nuclear norm), then list the locally "
                                   "optimal selections of a small general-random instance.")
    d.add_argument("--seed", type=int, default=0, help="seed of both instances (default 0)")
    d.set_defaults(func=_cmd_demo)
    return ap


def main(argv=None) -> int:
    """Run the command line; return the exit status (2 for every error, usage errors included)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code
    try:
        return args.func(args)
    except (InfeasibleError, TieError, SolverError, ValueError, TypeError, FileNotFoundError,
            IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
