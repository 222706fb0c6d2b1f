"""Command line ``python -m sims run``: same trajectory as the API, documented options, errors."""

import subprocess
import sys

import numpy as np
import pytest

import sims
from sims.cli import build_parser, main
from sims.data import equal_score, gaussian_joint


def test_module_entry_point_writes_the_api_trajectory(tmp_path):
    out = tmp_path / "traj.csv"
    cmd = [sys.executable, "-m", "sims", "run", "--family", "equal", "--n", "6", "--T", "8",
           "--d", "10", "--seed", "0", "--method", "ngd", "--steps", "3000", "--lr", "0.1",
           "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "corr" in res.stdout and "s_opt_min" in res.stdout
    got = sims.Trajectory.load(out)
    want = sims.run(equal_score(6, 8, 10, seed=0), "ngd", 3000, lr=0.1)
    for name in ("t", "loss", "log_excess", "corr", "log_one_minus_s_opt", "W_final", "reference"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    assert f"corr {want.corr[-1]:.8f}" in res.stdout


def test_joint_random_init_npz(tmp_path, capsys):
    out = tmp_path / "j.npz"
    code = main(["run", "--family", "joint", "--n", "8", "--T", "4", "--d", "6", "--param", "joint",
                 "--method", "ngd", "--steps", "500", "--init", "random", "--init-scale", "0.5",
                 "--init-seed", "3", "--normalize", "block", "--record", "50", "-o", str(out)])
    assert code == 0
    assert "u_corr" in capsys.readouterr().out
    got = sims.Trajectory.load(out)
    rng = np.random.default_rng(3)
    W0 = rng.standard_normal((6, 6)) * (0.5 / np.sqrt(6))
    u0 = rng.standard_normal(6) * (0.5 / np.sqrt(6))
    want = sims.run(gaussian_joint(8, 4, 6, seed=0), "ngd", 500, W0=W0, u0=u0, param="joint",
                    normalize="block", record=50)
    np.testing.assert_array_equal(got.t, np.arange(0, 501, 50))
    np.testing.assert_array_equal(got.u_final, want.u_final)
    np.testing.assert_array_equal(got.log_loss, want.log_loss)


def test_help_documents_every_option():
    parser = build_parser()
    run_parser = parser._subparsers._group_actions[0].choices["run"]
    text = run_parser.format_help()
    helps = {}
    for action in run_parser._actions:
        if action.dest == "help":
            continue
        assert action.help, f"{action.dest} has no help"
        helps.setdefault(action.help, []).append(action.dest)
        for opt in action.option_strings:
            assert opt in text
        for choice in action.choices or ():
            assert str(choice) in text, (action.dest, choice)
    # one text per option: a help line pasted onto two options documents neither
    assert all(len(dests) == 1 for dests in helps.values()), helps


@pytest.mark.parametrize("argv, message", [
    (["run", "--steps", "10", "-o", "x.txt"], "--output must end in .csv or .npz"),
    (["run", "--record", "often", "-o", "x.csv"], "--record takes 'log', 'all' or an integer"),
    (["run", "--method", "adam", "-o", "x.csv"], "invalid choice: 'adam'"),
])
def test_bad_arguments_exit_with_usage_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_invalid_values_reported_without_traceback(tmp_path, capsys):
    code = main(["run", "--lr", "-1", "--steps", "10", "-o", str(tmp_path / "x.csv")])
    assert code == 2
    assert "lr must be a finite positive number" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_momentum_method_and_beta(tmp_path, capsys):
    out = tmp_path / "m.npz"
    code = main(["run", "--family", "equal", "--n", "4", "--T", "5", "--d", "6", "--method",
                 "ngd_momentum", "--beta", "0.5", "--steps", "200", "--record", "20", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    got = sims.Trajectory.load(out)
    want = sims.run(equal_score(4, 5, 6, seed=0), "ngd_momentum", 200, beta=0.5, record=20)
    assert got.method == "ngd_momentum" and got.beta == 0.5
    np.testing.assert_array_equal(got.W_final, want.W_final)
    np.testing.assert_array_equal(got.log_step_length, want.log_step_length)
