"""``python -m paper_figs``: rebuild every figure (or ``--only`` some) into one folder."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

from tqdm.auto import tqdm

from paper_figs.common import DEFAULT_OUT, DEFAULT_RUNS, FIGURES, build_figure


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
                   help=f"output folder (default: {DEFAULT_OUT})")
    p.add_argument("--runs", type=Path, default=None,
                   help=f"folder of existing real-data run records (default: {DEFAULT_RUNS} "
                        "when present, otherwise the real-data figures train on embedded data)")
    return p


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    names = list(FIGURES) if args.only is None else list(dict.fromkeys(args.only))
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        parser.error(f"unknown figure name(s) {', '.join(map(repr, unknown))}; "
                     f"choose from: {', '.join(FIGURES)}")
    written, failed = [], {}
    bar = tqdm(names, desc="figures", unit="fig", file=sys.stderr)
    for name in bar:
        bar.set_postfix_str(name)
        start = time.perf_counter()
        try:
            paths = build_figure(name, args.out, quick=args.quick, runs=args.runs)
        except Exception as exc:  # one broken figure must not hide the others
            failed[name] = exc
            tqdm.write(f"[paper_figs] {name} FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            continue
        written.extend(paths)
        tqdm.write(f"[paper_figs] {name}: {len(paths)} file(s) in "
                   f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
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
