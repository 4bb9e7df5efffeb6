"""A vanilla RNN trained by back-propagation through time on the adding problem (sec. 10.2).

Sequence-to-one network (fig. 10.5): a(t) = b + W h(t−1) + U x(t), h(t) = tanh(a(t))
(eq. 10.8-10.9), one linear output ŷ = c + V h(τ) at the end, squared error. Forward and BPTT
(eq. 10.17-10.21) come from ``dlbench.ops.rnn_forward`` / ``rnn_backward`` (NumPy reference
backend, float64). The adding problem (Hochreiter & Schmidhuber 1997): x(t) = (u_t, marker_t)
with u_t ~ U(0, 1) and exactly two markers; the target is the sum of the two marked values —
a long-term dependency (sec. 8.2.5, 10.7) whose difficulty grows with τ.
"""

from __future__ import annotations

import numpy as np

from dlbench.problems import register
from dlbench.problems.base import Problem


@register("rnn_adding")
class RNNAdding(Problem):
    """Vanilla tanh RNN (hidden units ``hidden``) on the adding problem of length ``tau``.

    J = 1/(2m) Σ (ŷ_i − y_i)² on a fixed training set of m sequences; ``train_grad`` is the
    gradient on a minibatch of ``batch`` of them (stochastic). Predicting the mean scores
    J = var(y)/2 ≈ 0.083; the target is J ≤ 0.01 (the task is deterministic: reference 0).
    θ = [U (n_h × 2), W (n_h × n_h), b, V (1 × n_h), c]; x0(seed): U(−1/√n_h, 1/√n_h) as
    torch.nn.RNN, c = mean target (output bias from the marginals, sec. 8.4).
    """

    section = "10.2"
    stochastic = True
    reference_loss = 0.0
    target_loss = 0.01
    eval_every = 25
    max_iters = 4000
    clip_norm = 1.0
    lr_grid = tuple(float(v) for v in 10.0 ** np.arange(-3.5, 0.01, 0.5))

    def __init__(self, tau: int = 10, hidden: int = 16, m: int = 512, batch: int = 32, instance: int = 0):
        super().__init__(tau=tau, hidden=hidden, m=m, batch=batch, instance=instance)
        rng = np.random.default_rng(instance)
        self.tau, self.h, self.m, self.batch = int(tau), int(hidden), int(m), int(batch)
        if self.tau < 2:
            raise ValueError("tau must be >= 2")
        u = rng.uniform(0, 1, (self.tau, self.m))
        marks = np.zeros((self.tau, self.m))
        for i in range(self.m):
            marks[rng.choice(self.tau, 2, replace=False), i] = 1.0
        self.x = np.ascontiguousarray(np.stack([u, marks], -1))  # (tau, m, 2)
        self.y = (u * marks).sum(0)
        nh = self.h
        self.shapes = [(nh, 2), (nh, nh), (nh,), (1, nh), (1,)]
        self._offs = np.cumsum([0] + [int(np.prod(s)) for s in self.shapes])
        self.n = int(self._offs[-1])

    def unpack(self, x):
        """(U, W, b, V, c) as views of θ."""
        return [x[self._offs[i] : self._offs[i + 1]].reshape(s) for i, s in enumerate(self.shapes)]

    def _loss_grad(self, theta, xs, ys, need_grad=True):
        from dlbench import ops

        U, W, b, V, c = self.unpack(theta)
        fw = ops.rnn_forward(xs, U, W, b, backend="numpy")
        yhat = fw.h_last @ V[0] + c[0]
        r = yhat - ys
        loss = float(0.5 * (r @ r) / len(ys))
        if not need_grad:
            return loss, None
        g = np.empty_like(theta)
        gU, gW, gb, gV, gc = self.unpack(g)
        dlast = np.outer(r / len(ys), V[0])  # dL/dh(τ)
        gr = ops.rnn_backward(xs, fw.h, None, U, W, grad_h_last=dlast, backend="numpy")
        gU[...], gW[...], gb[...] = gr.U, gr.W, gr.b
        gV[0] = fw.h_last.T @ (r / len(ys))
        gc[0] = r.sum() / len(ys)
        return loss, g

    def f(self, x):
        with np.errstate(over="ignore", invalid="ignore"):
            return self._loss_grad(x, self.x, self.y, need_grad=False)[0]

    def grad(self, x):
        return self._loss_grad(x, self.x, self.y)[1]

    def train_grad(self, x, rng=None, k=0):
        if rng is None:
            return self.grad(x)
        idx = rng.integers(0, self.m, self.batch)
        return self._loss_grad(x, np.ascontiguousarray(self.x[:, idx]), self.y[idx])[1]

    def x0(self, seed):
        rng = np.random.default_rng(seed)
        k = 1.0 / np.sqrt(self.h)
        x = rng.uniform(-k, k, self.n)
        self.unpack(x)[4][...] = self.y.mean()
        return x
