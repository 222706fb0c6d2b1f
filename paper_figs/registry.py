"""The list of figures, how to build one, and the command line of a single figure script.

Every figure module ``paper_figs.plot_<name>`` defines ``make(out_dir, quick=False)``
(real-data figures also take ``runs=None``) returning the list of files it wrote,
and ends with ``if __name__ == "__main__": raise SystemExit(main(make, NAME))``.
Adding a figure is that module plus one :class:`FigureInfo` in :data:`FIGURES`.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_OUT", "DEFAULT_RUNS", "FIGURES", "FigureInfo", "REPO_ROOT", "build_figure",
           "check_out_dir", "main"]

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "figures"
DEFAULT_RUNS = REPO_ROOT / "runs"


@dataclass(frozen=True)
class FigureInfo:
    """One entry of the figure registry.

    Attributes
    ----------
    name : str
        Figure name: the module is ``paper_figs.plot_<name>``, the outputs ``<name>.*``.
    description : str
        One line for ``--help``.
    uses_runs : bool
        Whether ``make`` takes the folder of real-data run records (``runs=``).
    """

    name: str
    description: str
    uses_runs: bool = False

    @property
    def module(self) -> str:
        """Import path of the figure's script."""
        return f"paper_figs.plot_{self.name}"


FIGURES = {
    info.name: info
    for info in (
        FigureInfo("rates_fixed_decoder",
                   "GD vs NGD vs Polyak on the equal-score family, with predicted slopes"),
        FigureInfo("global_vs_local",
                   "final 1 - corr with W_mm and W_mm(selection): equal-score vs general random"),
        FigureInfo("joint_training", "joint (u, W) training: alignment, norms, loss envelope"),
        FigureInfo("param_w_vs_kq", "W vs (K, Q) parametrisation: Frobenius vs nuclear W-SVM"),
        FigureInfo("scaling", "iterations to reach 1 - corr < 1e-2 against n, T and d"),
        FigureInfo("realdata_language", "SGD/Adam/SNGD/SPS on text (BERT)", uses_runs=True),
        FigureInfo("realdata_vision", "SGD/Adam/SNGD/SPS on images (ViT)", uses_runs=True),
    )
}


def build_figure(name, out_dir=DEFAULT_OUT, quick=False, runs=None):
    """Import ``paper_figs.plot_<name>`` and run its ``make``; return the written paths.

    Parameters
    ----------
    name : str
        A key of :data:`FIGURES`.
    out_dir : str or os.PathLike
        Output folder (created when missing).
    quick : bool
        Small budget (what CI runs).
    runs : str or os.PathLike, optional
        Folder of real-data run records (real-data figures only; ignored by the others).

    Returns
    -------
    list of pathlib.Path

    Raises
    ------
    ValueError
        If ``name`` is not a registered figure.

    Examples
    --------
    >>> build_figure("no_such_figure")
    Traceback (most recent call last):
    ...
    ValueError: unknown figure 'no_such_figure'; expected one of: rates_fixed_decoder, \
global_vs_local, joint_training, param_w_vs_kq, scaling, realdata_language, realdata_vision
    """
    try:
        info = FIGURES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown figure {name!r}; expected one of: {', '.join(FIGURES)}"
        ) from None
    make = importlib.import_module(info.module).make
    kwargs = {"runs": runs} if info.uses_runs else {}
    return [Path(p) for p in make(Path(out_dir), quick, **kwargs)]


def check_out_dir(parser, out):
    """Stop ``parser`` with one ``error:`` line (exit 2) when ``out`` cannot be a folder."""
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} is a file; give a folder")


def _parser(info):
    p = argparse.ArgumentParser(
        prog=f"python -m {info.module}",
        description=f"Rebuild the figure {info.name!r}: {info.description}.",
    )
    p.add_argument("--quick", action="store_true",
                   help="small budget (seconds); what CI runs")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="output folder, created when missing (default: figures/ at the "
                        "repository root)")
    if info.uses_runs:
        p.add_argument("--runs", type=Path, default=None,
                       help="folder of existing run records (default: runs/ at the repository "
                            "root when present, otherwise train on the embedded data)")
    return p


def main(make, name, argv=None):
    """Command-line entry of one figure module: parse, build, print the written files.

    Returns
    -------
    int
        Exit status 0 (a bad argument exits 2 with one ``error:`` line).
    """
    info = FIGURES[name]
    parser = _parser(info)
    args = parser.parse_args(argv)
    check_out_dir(parser, args.out)
    kwargs = {"runs": args.runs} if info.uses_runs else {}
    for path in make(args.out, args.quick, **kwargs):
        print(path)
    return 0
