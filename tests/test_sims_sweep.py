"""Sweeps: run_many equals run() run by run, in product order, locally and on a dask cluster."""

import itertools

import numpy as np
import pytest

import sims
from sims.data import equal_score, gaussian_joint, general_random

FIELDS = ("t", "loss", "log_excess", "norm", "corr", "dist", "s_opt_min", "log_one_minus_s_opt",
          "log_step_length", "log_grad_norm", "W_final", "attn_argmax_final")


def assert_same(a, b):
    assert (a.method, a.lr, a.param, a.loss_name, a.steps) == (b.method, b.lr, b.param, b.loss_name, b.steps)
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("u_final", "u_corr", "K_final", "Q_final"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=name)


def mixed_sweep():
    # two shapes, so the sweep makes two compiled calls
    problems = [equal_score(6, 8, 10, seed=0), general_random(4, 5, 6, seed=1),
                equal_score(6, 8, 10, seed=2)]
    refs = [np.eye(p.d) + 0.1 * np.ones((p.d, p.d)) for p in problems]
    W0s = [None, np.full((6, 6), 0.01), None]
    return problems, refs, W0s


def test_run_many_matches_individual_runs_in_product_order():
    problems, refs, W0s = mixed_sweep()
    methods, lrs = ["gd", "ngd", "polyak"], [0.3, None]
    out = sims.run_many(problems, methods, lrs, 400, references=refs, W0s=W0s, record=50)
    combos = list(itertools.product(range(len(problems)), methods, lrs))
    assert len(out) == len(combos)
    for tr, (ip, m, lr) in zip(out, combos):
        single = sims.run(problems[ip], m, 400, lr=lr, W0=W0s[ip], reference=refs[ip], record=50)
        assert_same(tr, single)


@pytest.mark.parametrize("param", ["kq", "joint"])
def test_run_many_other_parametrisations(param):
    if param == "joint":
        problems = [gaussian_joint(8, 4, 6, seed=s) for s in range(2)]
        kw = dict(references_u=[np.ones(6)] * 2, u0s=[None, np.full(6, 0.1)])
    else:
        problems = [equal_score(4, 5, 6, seed=s) for s in range(2)]
        rng = np.random.default_rng(0)
        kw = dict(K0s=[rng.standard_normal((6, 2)) for _ in problems],
                  Q0s=[rng.standard_normal((6, 2)) for _ in problems])
    out = sims.run_many(problems, ["gd", "ngd"], [0.2], 300, references=[np.eye(6)] * 2,
                        param=param, normalize="block", **kw)
    for tr, (ip, m) in zip(out, itertools.product(range(2), ["gd", "ngd"])):
        single_names = {"references_u": "reference_u", "u0s": "u0", "K0s": "K0", "Q0s": "Q0"}
        one = {single_names[k]: v[ip] for k, v in kw.items()}
        single = sims.run(problems[ip], m, 300, lr=0.2, reference=np.eye(6), param=param,
                          normalize="block", **one)
        assert_same(tr, single)


def test_dask_cluster_sweep_equals_local():
    distributed = pytest.importorskip("distributed")
    problems, refs, W0s = mixed_sweep()
    args = (problems, ["ngd", "polyak"], [0.2], 300)
    kw = dict(references=refs, W0s=W0s, record="log", num_records=30)
    local = sims.run_many(*args, **kw)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = sims.run_many(*args, executor=client, **kw)
    assert len(remote) == len(local)
    for a, b in zip(remote, local):
        assert_same(a, b)


def test_run_many_checks_per_problem_lists():
    problems, refs, _ = mixed_sweep()
    with pytest.raises(ValueError, match=r"references must have one entry per problem \(3\), got 2"):
        sims.run_many(problems, "ngd", 0.1, 10, references=refs[:2])
    with pytest.raises(ValueError, match=r"unknown method 'sgd'"):
        sims.run_many(problems, ["ngd", "sgd"], [0.1], 10, references=refs)
    with pytest.raises(ValueError, match=r"chunks must be an integer >= 1, got 0"):
        sims.run_many(problems, "ngd", 0.1, 10, references=refs, executor=object(), chunks=0)


def test_fork_process_pools_are_refused_with_advice():
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    problems, refs, _ = mixed_sweep()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        with pytest.raises(ValueError, match=r"get_context\('spawn'\)"):
            sims.run_many(problems, "ngd", 0.1, 10, references=refs, executor=pool)
