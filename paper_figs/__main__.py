"""``python -m paper_figs``: rebuild every figure (or ``--only`` some) into one folder.

Progress is a count of figures done and the time spent, with no overall estimate of the
time left: the figures differ in cost by two orders of magnitude (and the real-data ones
by whether run records exist), so a rate averaged over figures would be a guess.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

from tqdm.auto import tqdm

from paper_figs.registry import DEFAULT_OUT, FIGURES, build_figure, check_out_dir


def _parser():
    listing = "\n".join(f"  {k:22s} {v.description}" for k, v in FIGURES.items())
    p = argparse.ArgumentParser(
        prog="python -m paper_figs",
        description="Rebuild the paper's figures (PNG + the CSV behind each).",
        epilog=f"figures:\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true",
                   help="small budget for every figure (what CI runs; a few minutes in all)")
    p.add_argument("--only", nargs="+", metavar="NAME", default=None,
                   help="rebuild only these figures")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="output folder, created when missing (default: figures/ at the "
                        "repository root)")
    p.add_argument("--runs", type=Path, default=None,
                   help="folder of existing real-data run records (default: runs/ at the "
                        "repository root when present, otherwise the real-data figures train "
                        "on the embedded data)")
    return p


def main(argv=None):
    """Build the figures named on the command line; return the exit status.

    Returns
    -------
    int
        0 when every figure was written, 1 when some failed (each failure is reported and
        the others are still built); a bad argument exits 2 with one ``error:`` line.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    names = list(FIGURES) if args.only is None else list(dict.fromkeys(args.only))
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        parser.error(f"unknown figure name(s) {', '.join(map(repr, unknown))}; "
                     f"choose from: {', '.join(FIGURES)}")
    check_out_dir(parser, args.out)
    if args.runs is not None and args.runs.exists() and not args.runs.is_dir():
        parser.error(f"--runs {args.runs} is a file; give the folder of run records")
    written, failed = [], {}
    bar = tqdm(total=len(names), desc="figures", file=sys.stderr,
               bar_format="{desc}: {n}/{total} done, {elapsed} so far{postfix}")
    for name in names:
        bar.set_postfix_str(f"building {name}")
        start = time.perf_counter()
        try:
            paths = build_figure(name, args.out, quick=args.quick, runs=args.runs)
        except Exception as exc:  # one broken figure must not hide the others
            failed[name] = exc
            tqdm.write(f"[paper_figs] {name} FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
        else:
            written.extend(paths)
            tqdm.write(f"[paper_figs] {name}: {len(paths)} file(s) in "
                       f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
        bar.set_postfix_str("", refresh=False)
        bar.update()
    bar.close()
    print(f"wrote {len(written)} file(s):")
    for p in written:
        print(f"  {p}")
    if failed:
        print(f"error: {len(failed)} of {len(names)} figure(s) failed: "
              + "; ".join(f"{k} ({type(e).__name__}: {e})" for k, e in failed.items()),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
