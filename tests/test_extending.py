"""docs/architecture.md, "Extending": each recipe done once, touching only the files it names.

A new synthetic family is one generator plus one ``FAMILIES`` entry, and both command lines take
it; a new figure is one ``plot_<name>`` module plus one ``FigureInfo`` entry, and ``python -m
paper_figs --only`` builds it. (The update-rule recipe is exercised by the momentum-NGD tests in
test_sims.py, the optimizer recipe by the toy optimizer in test_realdata_train.py.)
"""
import csv
import sys
import types

import numpy as np
import pytest

import theory
from theory import AttentionProblem, families


def _toy_family(n=3, T=4, d=5, seed=0):
    """Equal-score data whose optimal token is always the first: a family written for the test."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, d))
    X[:, :, 0] = 0.0
    y = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    X[:, 0, 0] = y
    return AttentionProblem(X, y, np.eye(d)[0])


@pytest.fixture
def toy_family(monkeypatch):
    monkeypatch.setitem(families.FAMILIES, "toy", _toy_family)
    return "toy"


def test_a_registered_family_is_built_by_name(toy_family):
    p = theory.make_family(toy_family, n=4, T=3, d=6, seed=2)
    expected = _toy_family(n=4, T=3, d=6, seed=2)
    np.testing.assert_array_equal(p.X, expected.X)
    np.testing.assert_array_equal(p.opt, np.zeros(4, dtype=int))


def test_the_theory_command_line_takes_a_registered_family(toy_family, tmp_path, capsys):
    from theory.cli import main

    out = tmp_path / "toy.npz"
    assert main(["random", "--kind", toy_family, "--n", "3", "--T", "4", "--d", "5",
                 "--seed", "1", "-o", str(out)]) == 0
    np.testing.assert_array_equal(AttentionProblem.load(out).X, _toy_family(seed=1).X)


def test_the_sims_command_line_takes_a_registered_family(toy_family, tmp_path):
    from sims.cli import main

    out = tmp_path / "toy.csv"
    assert main(["run", "--family", toy_family, "--n", "3", "--T", "4", "--d", "5",
                 "--method", "ngd", "--steps", "50", "--lr", "0.1", "-o", str(out)]) == 0
    from sims import Trajectory

    traj = Trajectory.load(out)
    # NGD moves exactly lr per step from W0 = 0 and every step here points the same way up to
    # rounding once aligned, so ||W_50|| <= 50 * 0.1 with equality only for a straight path.
    assert traj.steps == 50 and traj.t[-1] == 50
    assert 4.0 < traj.norm[-1] <= 5.0 + 1e-12
    np.testing.assert_array_equal(traj.opt, np.zeros(3, dtype=int))


@pytest.fixture
def toy_figure(monkeypatch):
    from paper_figs import registry
    from paper_figs.output import save_outputs
    from paper_figs.plotting import new_figure

    def make(out_dir, quick=False):
        fig, axes = new_figure(1, 1, "toy figure")
        t = np.arange(5.0)
        np.ravel(axes)[0].plot(t, t ** 2)
        return save_outputs(fig, out_dir, "toy", {"t": t, "t_squared": t ** 2})

    module = types.ModuleType("paper_figs.plot_toy")
    module.make = make
    monkeypatch.setitem(sys.modules, "paper_figs.plot_toy", module)
    monkeypatch.setitem(registry.FIGURES, "toy", registry.FigureInfo("toy", "a test figure"))
    return "toy"


def test_a_registered_figure_is_built_by_the_command_line(toy_figure, tmp_path):
    from paper_figs.__main__ import main

    assert main(["--only", toy_figure, "--quick", "--out", str(tmp_path)]) in (0, None)
    assert (tmp_path / "toy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(tmp_path / "toy.csv") as fh:
        rows = list(csv.DictReader(fh))
    np.testing.assert_allclose([float(r["t_squared"]) for r in rows], [0, 1, 4, 9, 16])
