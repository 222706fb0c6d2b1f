"""Command line: ``python -m theory {svm,random,demo}``.

``svm``     solve the W-SVM of an instance file and print (or write) the result;
``random``  write a synthetic instance of one of the SPEC 7 families;
``demo``    the interim main job: solve an equal-score instance, cross-check it,
            and list the locally optimal selections of a small random instance.

Errors (unreadable or invalid file, infeasible problem, tied optimal token)
print one line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import zipfile

import numpy as np

from .errors import InfeasibleError, TieError
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
    """Write ``W, margins, support, dual, selection, norm_value, kkt_residual`` to ``.npz`` atomically."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a result file should read like any other
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, W=sol.W, margins=sol.margins, support=sol.support, dual=sol.dual,
                     selection=sol.selection, norm_value=sol.norm_value,
                     kkt_residual=sol.kkt_residual, norm=sol.norm)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _load(path):
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not an .npz archive")
    try:
        return AttentionProblem.load(path)
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{path}: not a readable .npz instance ({exc})") from None


def _parse_selection(text):
    try:
        return np.array([int(v) for v in text.split(",")], dtype=np.int64)
    except ValueError:
        raise ValueError(f"--selection must be comma-separated integers, got {text!r}") from None


def _cmd_svm(args):
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
    from sims.data import make_family

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
    from sims.data import equal_score, general_random

    p = equal_score(n=6, T=8, d=10, seed=args.seed)
    print("== Global W-SVM of an equal-score instance (SPEC 7) ==")
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
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return v


def _parser():
    ap = argparse.ArgumentParser(
        prog="python -m theory",
        description="Max-margin token-selection SVMs of one-layer attention (see SPEC.md, "
                    "section 2). Errors exit with status 2.",
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

    r = sub.add_parser("random", help="write a synthetic instance (SPEC 7 families)",
                       description="Write a seeded synthetic instance of a SPEC 7 family.")
    r.add_argument("--kind", choices=("equal", "random", "overparam", "joint"), required=True,
                   help="equal-score, general random, over-parameterised random, or "
                        "Gaussian-like joint")
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
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except (InfeasibleError, TieError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
