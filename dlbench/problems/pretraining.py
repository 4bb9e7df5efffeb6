"""Greedy supervised pretraining against joint training (sec. 8.7.4, fig. 8.7).

A tanh MLP 64 → 32 → 32 → 32 → 10 on scikit-learn's digits. θ holds the hidden layers and one
softmax head per depth (heads 1 … L−1 are the auxiliary outputs of the greedy stages; head L
is the network's output). J(θ) is always the cross-entropy of the full network with head L.

``mode="greedy"`` (fig. 8.7): stage s = 1 … L trains only hidden layer s and head s on the output
of the frozen layers below (a shallow network: "train a shallow MLP, keep its first layer, stack
a new hidden layer trained on its output"), ``stage_iters`` iterations each; then every layer
and head L are fine-tuned jointly. ``mode="joint"``: all layers and head L from the start. Both
start from the same x0(seed) (Glorot weights, output biases from the class marginals).
"""

from __future__ import annotations

import numpy as np

from dlbench.problems import register
from dlbench.problems.data import _dataset, _log_softmax, _MLPBase


@register("pretraining")
class Pretraining(_MLPBase):
    """Deep tanh MLP on digits, trained greedily layer by layer (8.7.4) or jointly."""

    section = "8.7.4"
    max_iters = 3000

    def __init__(
        self, mode: str = "greedy", depth: int = 3, width: int = 32, batch: int = 64, stage_iters: int = 300
    ):
        super().__init__(mode=mode, depth=depth, width=width, batch=batch, stage_iters=stage_iters)
        if mode not in ("greedy", "joint"):
            raise ValueError(f"mode must be 'greedy' or 'joint', got {mode!r}")
        X, y = _dataset("digits")
        X = X / 16.0
        self.X, self.y = X - X.mean(0), y
        self.m, self.batch = len(X), int(batch)
        self.Y = np.eye(10)[y]
        self.mode, self.L, self.w, self.stage_iters = mode, int(depth), int(width), int(stage_iters)
        self.activation = "tanh"
        self.classes = np.bincount(y, minlength=10) / len(y)
        self.shapes = []
        for i in range(self.L):
            self.shapes += [(64 if i == 0 else self.w, self.w), (self.w,)]
        for _ in range(self.L):
            self.shapes += [(self.w, 10), (10,)]
        self._offs = np.cumsum([0] + [int(np.prod(s)) for s in self.shapes])
        self.n = int(self._offs[-1])
        self.blocks = [np.arange(self._offs[2 * i], self._offs[2 * i + 2]) for i in range(2 * self.L)]

    def _arrays(self, x):
        arrs = [x[self._offs[i] : self._offs[i + 1]].reshape(s) for i, s in enumerate(self.shapes)]
        hidden = list(zip(arrs[0 : 2 * self.L : 2], arrs[1 : 2 * self.L : 2]))
        heads = list(zip(arrs[2 * self.L :: 2], arrs[2 * self.L + 1 :: 2]))
        return hidden, heads

    def stage(self, k: int) -> int:
        """Greedy stage at iteration k: 1 … L, then L + 1 = joint fine-tuning (joint mode: L + 1)."""
        if self.mode == "joint":
            return self.L + 1
        return min(k // max(self.stage_iters, 1) + 1, self.L + 1)

    def _loss_grad_depth(self, x, X, Y, depth: int, train_from: int, need_grad=True):
        """Loss of the network truncated at ``depth`` with head ``depth``; gradient for layers
        ``train_from`` … depth and that head (zeros elsewhere)."""
        hidden, heads = self._arrays(x)
        hs = [X]
        for W, b in hidden[:depth]:
            hs.append(np.tanh(hs[-1] @ W + b))
        Wo, bo = heads[depth - 1]
        logp = _log_softmax(hs[-1] @ Wo + bo)
        loss = float(-(Y * logp).sum() / len(X))
        if not need_grad:
            return loss, None
        g = np.zeros_like(x)
        ghid, gheads = self._arrays(g)
        d = (np.exp(logp) - Y) / len(X)
        gheads[depth - 1][0][...] = hs[-1].T @ d
        gheads[depth - 1][1][...] = d.sum(0)
        d = d @ Wo.T
        for i in range(depth - 1, train_from - 2, -1):
            d = d * (1.0 - hs[i + 1] ** 2)
            ghid[i][0][...] = hs[i].T @ d
            ghid[i][1][...] = d.sum(0)
            if i > train_from - 1:
                d = d @ hidden[i][0].T
        return loss, g

    def f(self, x):
        with np.errstate(over="ignore", invalid="ignore"):
            return self._loss_grad_depth(x, self.X, self.Y, self.L, 1, need_grad=False)[0]

    def grad(self, x):
        with np.errstate(over="ignore", invalid="ignore"):
            return self._loss_grad_depth(x, self.X, self.Y, self.L, 1)[1]

    def train_grad(self, x, rng=None, k=0):
        s = self.stage(k)
        if rng is None:
            X, Y = self.X, self.Y
        else:
            idx = rng.integers(0, self.m, self.batch)
            X, Y = self.X[idx], self.Y[idx]
        with np.errstate(over="ignore", invalid="ignore"):
            if s > self.L:
                return self._loss_grad_depth(x, X, Y, self.L, 1)[1]
            return self._loss_grad_depth(x, X, Y, s, s)[1]

    def x0(self, seed):
        from dlbench.optim import init as oi

        rng = np.random.default_rng(seed)
        x = np.zeros(self.n)
        hidden, heads = self._arrays(x)
        for W, _ in hidden:
            W[...] = oi.glorot_uniform(W.shape[::-1], rng=rng, dtype=np.float64).T
        lb = np.log(self.classes)
        for W, b in heads:
            W[...] = oi.glorot_uniform(W.shape[::-1], rng=rng, dtype=np.float64).T
            b[...] = lb - lb.mean()
        return x
