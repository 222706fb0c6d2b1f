"""SNGD and SPS: the applied update equals the formula of docs/theory.md §4."""

import math

import numpy as np
import pytest
import torch

from realdata.optim import SNGD, SPS, global_grad_norm


def _toy(seed, dtype=torch.float64):
    """A two-layer model with parameters in two groups, gradients of a real loss."""
    gen = torch.Generator().manual_seed(seed)
    lin1 = torch.nn.Linear(5, 4).to(dtype)
    lin2 = torch.nn.Linear(4, 3).to(dtype)
    with torch.no_grad():
        for p in [*lin1.parameters(), *lin2.parameters()]:
            p.copy_(torch.randn(p.shape, generator=gen, dtype=dtype))
    x = torch.randn(8, 5, generator=gen, dtype=dtype)
    y = torch.randint(0, 3, (8,), generator=gen)
    loss = torch.nn.functional.cross_entropy(lin2(torch.tanh(lin1(x))), y)
    loss.backward()
    return list(lin1.parameters()), list(lin2.parameters()), loss.detach()


def _numpy_state(params):
    return ([p.detach().numpy().copy() for p in params], [p.grad.numpy().copy() for p in params])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("cap", ["none", "loose", "binding"])
def test_sngd_update_is_the_formula(seed, cap):
    g1, g2, _ = _toy(seed)
    params = g1 + g2
    before, grads = _numpy_state(params)
    norm = math.sqrt(sum(float((g ** 2).sum()) for g in grads))
    lr = 0.3
    eta_max = {"none": None, "loose": 10 * lr / norm, "binding": 0.5 * lr / norm}[cap]
    opt = SNGD(params, lr=lr, eta_max=eta_max)
    opt.step()
    step = lr / norm if eta_max is None else min(lr / norm, eta_max)
    for p, w, g in zip(params, before, grads):
        np.testing.assert_allclose(p.detach().numpy(), w - step * g, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(opt.last_grad_norm, norm, rtol=1e-14)
    np.testing.assert_allclose(opt.last_step_size, step, rtol=1e-14)
    assert (opt.last_step_size == eta_max) == (cap == "binding")
    assert not opt.last_zero_grad
    moved = math.sqrt(sum(float(((p.detach().numpy() - w) ** 2).sum()) for p, w in zip(params, before)))
    # Uncapped, a normalised step has length exactly lr; capped, it is shorter.
    if cap == "binding":
        assert moved < lr * (1 - 1e-3)
    else:
        np.testing.assert_allclose(moved, lr, rtol=1e-13)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("cap", ["none", "loose", "binding"])
@pytest.mark.parametrize("c", [0.5, 0.2])
def test_sps_update_is_the_formula(seed, cap, c):
    g1, g2, loss = _toy(seed)
    params = g1 + g2
    before, grads = _numpy_state(params)
    sq = sum(float((g ** 2).sum()) for g in grads)
    polyak = float(loss) / (c * sq)
    eta_max = {"none": None, "loose": 2 * polyak, "binding": 0.25 * polyak}[cap]
    opt = SPS(params, c=c, eta_max=eta_max)
    opt.step(loss=loss)
    step = polyak if eta_max is None else min(polyak, eta_max)
    for p, w, g in zip(params, before, grads):
        np.testing.assert_allclose(p.detach().numpy(), w - step * g, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(opt.last_step_size, step, rtol=1e-14)
    np.testing.assert_allclose(opt.last_grad_norm, math.sqrt(sq), rtol=1e-14)
    assert (opt.last_step_size == eta_max) == (cap == "binding")


def test_sps_f_star_and_closure():
    g1, g2, loss = _toy(3)
    params = g1 + g2
    before, grads = _numpy_state(params)
    sq = sum(float((g ** 2).sum()) for g in grads)
    f_star = 0.1 * float(loss)
    opt = SPS(params, c=0.5, f_star=f_star)
    returned = opt.step(closure=lambda: loss)
    assert returned is loss
    step = (float(loss) - f_star) / (0.5 * sq)
    for p, w, g in zip(params, before, grads):
        np.testing.assert_allclose(p.detach().numpy(), w - step * g, rtol=1e-13)


def test_sps_f_star_above_loss_gives_zero_step_not_ascent():
    g1, g2, loss = _toy(4)
    params = g1 + g2
    before, _ = _numpy_state(params)
    opt = SPS(params, f_star=float(loss) + 1.0)
    opt.step(loss=loss)
    for p, w in zip(params, before):
        np.testing.assert_array_equal(p.detach().numpy(), w)
    assert opt.last_step_size == 0.0


@pytest.mark.parametrize("make", [lambda ps: SNGD(ps, lr=0.1), lambda ps: SNGD(ps, lr=0.1, eta_max=1.0),
                                  lambda ps: SPS(ps), lambda ps: SPS(ps, eta_max=1.0)])
@pytest.mark.parametrize("loss_value", [0.0, 0.7])
def test_zero_gradient_is_a_flagged_zero_step(make, loss_value):
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    w.grad = torch.zeros_like(w)
    opt = make([w])
    opt.step(loss=torch.tensor(loss_value, dtype=torch.float64))
    np.testing.assert_array_equal(w.detach().numpy(), [1.0, -2.0])
    assert opt.last_zero_grad
    assert opt.last_step_size == 0.0 and opt.last_grad_norm == 0.0
    # The next non-zero gradient clears the flag.
    w.grad = torch.tensor([3.0, 4.0], dtype=torch.float64)
    opt.step(loss=torch.tensor(1.0, dtype=torch.float64))
    assert not opt.last_zero_grad and opt.last_grad_norm == 5.0


def test_param_groups_share_the_global_norm():
    g1, g2, loss = _toy(5)
    before, grads = _numpy_state(g1 + g2)
    norm = math.sqrt(sum(float((g ** 2).sum()) for g in grads))
    norm1 = math.sqrt(sum(float((g ** 2).sum()) for g in grads[:2]))
    assert abs(norm1 - norm) > 1e-3 * norm  # a per-group norm would give another update
    lr1, lr2, cap2 = 0.2, 0.5, 0.3 / norm
    opt = SNGD([{"params": g1, "lr": lr1}, {"params": g2, "lr": lr2, "eta_max": cap2}], lr=1.0)
    opt.step()
    steps = [lr1 / norm] * 2 + [min(lr2 / norm, cap2)] * 2
    for p, w, g, s in zip(g1 + g2, before, grads, steps):
        np.testing.assert_allclose(p.detach().numpy(), w - s * g, rtol=1e-14, atol=1e-15)
    sizes = [float(s) for s in opt.state["global"]["step_sizes"]]
    np.testing.assert_allclose(sizes, [lr1 / norm, cap2], rtol=1e-14)

    # SPS: per-group c, one global loss and norm.
    g1, g2, loss = _toy(6)
    before, grads = _numpy_state(g1 + g2)
    sq = sum(float((g ** 2).sum()) for g in grads)
    opt = SPS([{"params": g1, "c": 0.5}, {"params": g2, "c": 2.0}])
    opt.step(loss=loss)
    steps = [float(loss) / (0.5 * sq)] * 2 + [float(loss) / (2.0 * sq)] * 2
    for p, w, g, s in zip(g1 + g2, before, grads, steps):
        np.testing.assert_allclose(p.detach().numpy(), w - s * g, rtol=1e-14, atol=1e-15)


def test_parameters_without_gradient_are_left_alone():
    g1, g2, _ = _toy(7)
    frozen = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    before, grads = _numpy_state(g1)
    norm = math.sqrt(sum(float((g ** 2).sum()) for g in grads))
    opt = SNGD(g1 + [frozen], lr=0.1)
    for p in g2:
        p.grad = None
    opt.step()
    np.testing.assert_array_equal(frozen.detach().numpy(), np.ones(3))
    np.testing.assert_allclose(opt.last_grad_norm, norm, rtol=1e-14)


@pytest.mark.parametrize("seed", [0, 1])
def test_float32_matches_float64_formula(seed):
    g1, g2, loss = _toy(seed, dtype=torch.float32)
    params = g1 + g2
    before = [p.detach().double().numpy().copy() for p in params]
    grads = [p.grad.double().numpy().copy() for p in params]
    sq = sum(float((g ** 2).sum()) for g in grads)
    opt = SPS(params, c=0.5, eta_max=10.0)
    opt.step(loss=loss)
    step = min(float(loss) / (0.5 * sq), 10.0)
    for p, w, g in zip(params, before, grads):
        assert p.dtype == torch.float32
        np.testing.assert_allclose(p.detach().double().numpy(), w - step * g, rtol=1e-5, atol=1e-6)


def test_sps_requires_the_loss():
    g1, g2, _ = _toy(0)
    opt = SPS(g1 + g2)
    with pytest.raises(TypeError, match="needs the mini-batch loss"):
        opt.step()
    with pytest.raises(ValueError, match="scalar loss"):
        opt.step(loss=torch.ones(3))


@pytest.mark.parametrize("kwargs", [dict(lr=0.0), dict(lr=-1.0), dict(lr=float("nan")),
                                    dict(lr=0.1, eta_max=0.0), dict(lr=0.1, eta_max=float("inf"))])
def test_sngd_rejects_bad_hyper_parameters(kwargs):
    with pytest.raises(ValueError):
        SNGD([torch.nn.Parameter(torch.zeros(1))], **kwargs)


@pytest.mark.parametrize("kwargs", [dict(c=0.0), dict(eta_max=-1.0), dict(f_star=float("nan"))])
def test_sps_rejects_bad_hyper_parameters(kwargs):
    with pytest.raises(ValueError):
        SPS([torch.nn.Parameter(torch.zeros(1))], **kwargs)


def test_recorded_state_survives_state_dict_round_trip():
    g1, g2, loss = _toy(1)
    opt = SPS(g1 + g2, eta_max=0.5)
    opt.step(loss=loss)
    opt.step(loss=loss)
    fresh = SPS(g1 + g2, eta_max=0.5)
    fresh.load_state_dict(opt.state_dict())
    assert fresh.state["global"]["step"] == 2
    assert fresh.last_step_size == opt.last_step_size
    assert fresh.last_grad_norm == opt.last_grad_norm


def test_global_grad_norm_over_tensors():
    a = torch.zeros(2, 2, requires_grad=True)
    a.grad = torch.full((2, 2), 2.0)
    b = torch.zeros(3, requires_grad=True)  # no gradient: skipped
    np.testing.assert_allclose(float(global_grad_norm([a, b])), 4.0, rtol=1e-7)
    assert float(global_grad_norm([b])) == 0.0


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("cap", ["step_size", "none", "step_length"])
@pytest.mark.parametrize("binding", [False, True])
def test_sngd_cap_options_are_their_formulas(seed, cap, binding):
    g1, g2, _ = _toy(seed)
    params = g1 + g2
    before, grads = _numpy_state(params)
    norm = math.sqrt(sum(float((g ** 2).sum()) for g in grads))
    lr = 0.3
    # Binding: the cap is smaller than what it caps (step size lr/|g| or step length lr).
    eta_max = None if cap == "none" else {
        "step_size": (0.5 if binding else 10) * lr / norm,
        "step_length": (0.5 if binding else 10) * lr}[cap]
    opt = SNGD(params, lr=lr, eta_max=eta_max, cap=cap)
    opt.step()
    step = {"step_size": lr / norm if eta_max is None else min(lr / norm, eta_max),
            "none": lr / norm,
            "step_length": lr / norm if eta_max is None else min(lr, eta_max) / norm}[cap]
    for p, w, g in zip(params, before, grads):
        np.testing.assert_allclose(p.detach().numpy(), w - step * g, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(opt.last_step_size, step, rtol=1e-14)
    moved = math.sqrt(sum(float(((p.detach().numpy() - w) ** 2).sum())
                          for p, w in zip(params, before)))
    expected_length = {"step_size": min(lr, eta_max * norm) if eta_max else lr, "none": lr,
                       "step_length": min(lr, eta_max) if eta_max else lr}[cap]
    np.testing.assert_allclose(moved, expected_length, rtol=1e-13)
    if binding and cap != "none":
        assert moved < lr * (1 - 1e-3)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(lr=True), TypeError, "lr must be a real number, not bool"),
    (dict(lr="0.1"), TypeError, "lr must be a real number, not str"),
    (dict(lr=1 + 2j), TypeError, "lr must be a real number, not complex"),
    (dict(lr=None), TypeError, "lr must be a real number, not NoneType"),
    (dict(lr=float("nan")), ValueError, "lr must be a positive finite number, got nan"),
    (dict(lr=-0.1), ValueError, "lr must be a positive finite number, got -0.1"),
    (dict(lr=1e-200, eta_max="1"), TypeError, "eta_max must be a real number, not str"),
    (dict(lr=0.1, cap="length"), ValueError, "unknown SNGD cap 'length'"),
    (dict(lr=0.1, cap=None), TypeError, "cap must be a string"),
    (dict(lr=0.1, eta_max=1.0, cap="none"), ValueError, "cap='none' takes no eta_max"),
])
def test_sngd_bad_arguments_raise_typed_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        SNGD([torch.nn.Parameter(torch.zeros(1))], **kwargs)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(c=True), TypeError, "c must be a real number, not bool"),
    (dict(c="0.5"), TypeError, "c must be a real number, not str"),
    (dict(eta_max=float("nan")), ValueError, "eta_max must be a positive finite number"),
    (dict(f_star="0"), TypeError, "f_star must be a real number"),
    (dict(f_star=float("inf")), ValueError, "f_star must be finite"),
])
def test_sps_bad_arguments_raise_typed_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        SPS([torch.nn.Parameter(torch.zeros(1))], **kwargs)


@pytest.mark.parametrize("scale", [1e-100, 1e100])
def test_sngd_step_length_is_exact_at_extreme_gradient_scales(scale):
    # The step length of uncapped SNGD is lr whatever the gradient's scale (float64).
    w = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    w.grad = torch.tensor([3.0, 4.0], dtype=torch.float64) * scale
    SNGD([w], lr=0.5).step()
    np.testing.assert_allclose(w.detach().numpy(), [-0.3, -0.4], rtol=1e-14)


def test_old_checkpoint_without_cap_loads_as_the_step_size_cap():
    g1, g2, _ = _toy(2)
    opt = SNGD(g1 + g2, lr=0.3, eta_max=1e-3)
    state = opt.state_dict()
    for group in state["param_groups"]:
        del group["cap"]  # as written before the option existed
    fresh = SNGD(g1 + g2, lr=0.3, eta_max=1e-3)
    fresh.load_state_dict(state)
    fresh.step()
    assert fresh.last_step_size == pytest.approx(1e-3, rel=1e-12)
