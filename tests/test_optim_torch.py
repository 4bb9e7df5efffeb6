"""The reference optimizers against torch.optim over 100 steps on the same gradients (float64).

Where the update rule is the same the trajectories agree to round-off. Where the book's form
differs (RMSProp's delta inside the root, Alg. 8.5; AdaGrad with delta inside), the test shows
the difference and that the named option reproduces torch. Also: Nesterov's book form
(gradient at theta + alpha v, Alg. 8.3 / 8.6) and the change-of-variables form agree, the
parameters of the latter being the look-ahead point of the former.
"""

import numpy as np
import pytest

from dlbench import optim

torch = pytest.importorskip("torch")

STEPS, N = 100, 64


def run_pair(ours, make_torch, steps=STEPS, n=N, seed=0):
    """Max |theta_ours - theta_torch| after ``steps`` steps of the same random gradients."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    p = torch.nn.Parameter(torch.from_numpy(x.copy()))
    topt = make_torch([p])
    state = ours.init(x)
    for _ in range(steps):
        g = rng.standard_normal(n)
        ours.step(x, g, state)
        p.grad = torch.from_numpy(g.copy())
        topt.step()
    return float(np.max(np.abs(x - p.detach().numpy()))), x


SAME = {
    "sgd": (lambda: optim.SGD(0.05, backend="numpy"), lambda ps: torch.optim.SGD(ps, lr=0.05)),
    "sgd_wd": (lambda: optim.SGD(0.05, weight_decay=0.01, backend="numpy"),
               lambda ps: torch.optim.SGD(ps, lr=0.05, weight_decay=0.01)),
    "momentum": (lambda: optim.Momentum(0.05, alpha=0.9, backend="numpy"),
                 lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9)),
    "nesterov": (lambda: optim.Nesterov(0.05, alpha=0.9, backend="numpy"),
                 lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True)),
    "adagrad": (lambda: optim.AdaGrad(0.1, eps=1e-10, backend="numpy"),
                lambda ps: torch.optim.Adagrad(ps, lr=0.1)),
    "adagrad_lr_decay": (lambda: optim.AdaGrad(optim.schedules.InverseTime(0.1, 0.01), eps=1e-10,
                                               backend="numpy"),
                         lambda ps: torch.optim.Adagrad(ps, lr=0.1, lr_decay=0.01)),
    "rmsprop": (lambda: optim.RMSProp(0.01, rho=0.99, eps=1e-8, eps_placement="outside", backend="numpy"),
                lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.99, eps=1e-8)),
    "rmsprop_momentum": (lambda: optim.RMSProp(0.01, rho=0.99, eps=1e-8, momentum=0.9,
                                               eps_placement="outside", backend="numpy"),
                         lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.99, eps=1e-8, momentum=0.9)),
    "adam": (lambda: optim.Adam(0.01, backend="numpy"), lambda ps: torch.optim.Adam(ps, lr=0.01)),
    "adam_wd": (lambda: optim.Adam(0.01, weight_decay=0.1, backend="numpy"),
                lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1)),
    "adamw": (lambda: optim.AdamW(0.01, weight_decay=0.1, backend="numpy"),
              lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1)),
    "adadelta": (lambda: optim.AdaDelta(1.0, rho=0.9, eps=1e-6, backend="numpy"),
                 lambda ps: torch.optim.Adadelta(ps, lr=1.0, rho=0.9, eps=1e-6)),
}


@pytest.mark.parametrize("name", list(SAME))
def test_reference_matches_torch_optim(name):
    ours, theirs = SAME[name]
    diff, x = run_pair(ours(), theirs)
    assert diff <= 1e-12 * max(1.0, float(np.max(np.abs(x)))), f"{name}: max diff {diff:g}"


def test_rmsprop_book_form_differs_and_outside_reproduces_torch():
    """Alg. 8.5 puts delta inside the root, sqrt(delta + r); torch uses sqrt(r) + delta."""
    torch_rms = lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, eps=1e-3)  # noqa: E731
    book, _ = run_pair(optim.RMSProp(0.01, rho=0.9, eps=1e-3, backend="numpy"), torch_rms)
    same, _ = run_pair(optim.RMSProp(0.01, rho=0.9, eps=1e-3, eps_placement="outside", backend="numpy"),
                       torch_rms)
    assert book > 1e-4          # a visible difference with a large delta ...
    assert same < 1e-12         # ... that the option removes


def test_adagrad_delta_inside_differs_from_torch():
    """AdaGrad (Alg. 8.4) and torch agree with delta outside; moving it inside changes the step."""
    torch_ada = lambda ps: torch.optim.Adagrad(ps, lr=0.1, eps=1e-2)  # noqa: E731
    outside, _ = run_pair(optim.AdaGrad(0.1, eps=1e-2, backend="numpy"), torch_ada)
    inside, _ = run_pair(optim.AdaGrad(0.1, eps=1e-2, eps_placement="inside", backend="numpy"), torch_ada)
    assert outside < 1e-12 and inside > 1e-4


def test_momentum_with_schedule_differs_from_torch_form():
    """With a varying rate the book's v (lr inside the velocity) and torch's buffer differ."""
    sched = optim.schedules.LinearDecay(0.1, tau=50)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(N)
    p = torch.nn.Parameter(torch.from_numpy(x.copy()))
    topt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    ours = optim.Momentum(sched, alpha=0.9, backend="numpy")
    st = ours.init(x)
    for k in range(STEPS):
        g = rng.standard_normal(N)
        ours.step(x, g, st)
        for group in topt.param_groups:
            group["lr"] = sched(k)
        p.grad = torch.from_numpy(g.copy())
        topt.step()
    assert np.max(np.abs(x - p.detach().numpy())) > 1e-6


def _quadratic(n=20, seed=3):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = q @ np.diag(np.linspace(0.1, 2.0, n)) @ q.T
    b = rng.standard_normal(n)
    return lambda x: A @ x - b, rng.standard_normal(n)


@pytest.mark.parametrize("kind", ["nesterov", "rmsprop_nesterov"])
def test_nesterov_book_form_equals_change_of_variables(kind):
    """Alg. 8.3 / 8.6 with the gradient at theta + alpha v, versus the form that uses the gradient at
    the parameters: the latter's parameters are the former's look-ahead point theta + alpha v."""
    grad, x0 = _quadratic()
    alpha = 0.9
    if kind == "nesterov":
        book, shifted = (optim.Nesterov(0.05, alpha, form=f, backend="numpy") for f in ("book", "torch"))
    else:
        # delta = 1e-3 keeps g / sqrt(delta + r) well conditioned where a gradient component
        # crosses zero (with 1e-6 round-off is amplified to ~1e-8 by then)
        book, shifted = (optim.RMSPropNesterov(0.01, rho=0.9, alpha=alpha, eps=1e-3, form=f, backend="numpy")
                         for f in ("book", "torch"))
    theta, phi = x0.copy(), x0.copy()
    sb, ss = book.init(theta), shifted.init(phi)
    for _ in range(STEPS):
        book.step(theta, grad, sb)           # grad evaluated at theta + alpha v
        shifted.step(phi, grad(phi), ss)      # gradient at the parameters
    np.testing.assert_allclose(phi, theta + alpha * sb["v"][0], rtol=1e-10, atol=1e-12)


def test_book_form_needs_a_gradient_function():
    opt = optim.Nesterov(0.1, form="book", backend="numpy")
    x = np.zeros(3)
    with pytest.raises(ValueError, match="interim point"):
        opt.step(x, np.ones(3), opt.init(x))
