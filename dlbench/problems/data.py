"""Problems on small real data sets bundled with scikit-learn (no download).

- ``logistic``: L2-regularized logistic regression on breast-cancer (569 × 30), convex with a
  cheap Hessian; f* is computed to machine precision by Newton's method (Alg. 8.8).
- ``mlp_digits``: a tanh MLP on digits (1797 × 64, 10 classes) with softmax cross-entropy,
  minibatch gradients, the initialization strategies of sec. 8.4 (``init=``) and an optional
  curriculum (sec. 8.7.6, ``curriculum=True``).
- ``cnn_digits``: a small convolutional network on the 8 × 8 digits: 3 × 3 convolution (eq. 9.7,
  "same" padding) → ReLU → 2 × 2 average pooling (sec. 9.3) → dense softmax.

The cross-entropy of a network that can separate the training set has infimum 0, not attained:
those problems state ``reference_loss = 0`` and an absolute ``target_loss``.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from dlbench.problems import register
from dlbench.problems.base import Problem


@cache
def _dataset(name: str):
    try:
        from sklearn import datasets
    except ImportError as e:
        raise ImportError(f"the {name} problems need scikit-learn (pip install scikit-learn)") from e
    d = datasets.load_breast_cancer() if name == "breast_cancer" else datasets.load_digits()
    X = np.asarray(d.data, dtype=np.float64)
    y = np.asarray(d.target)
    return X, y


def _grid(lo, hi, step=0.5):
    return tuple(float(v) for v in 10.0 ** np.arange(lo, hi + 1e-9, step))


def _log_softmax(o):
    o = o - o.max(1, keepdims=True)
    return o - np.log(np.exp(o).sum(1, keepdims=True))


# ------------------------------------------------------------------------------ logistic
@register("logistic")
class Logistic(Problem):
    """L2-regularized logistic regression on scikit-learn's breast-cancer data (sec. 8.6 tests).

    J(w, b) = (1/m) Σ log(1 + exp(−s_i (x_iᵀw + b))) + (λ/2) ‖w‖², s_i = ±1, features
    standardized. θ = [w, b] (31 values). Convex; f* and θ* by damped Newton to machine
    precision. ``batch`` = None is full batch (deterministic); an int makes ``train_grad`` a
    minibatch gradient (stochastic). x0(seed) = N(0, ½²).
    """

    section = "8.6"
    lr_grid = _grid(-3, 1.5)
    max_iters = 5000
    rel_tol = 1e-6

    def __init__(self, lam: float = 1e-3, batch: int | None = None):
        super().__init__(lam=lam, batch=batch)
        X, y = _dataset("breast_cancer")
        X = (X - X.mean(0)) / X.std(0)
        self.X = np.hstack([X, np.ones((len(X), 1))])
        self.s = np.where(y == 1, 1.0, -1.0)
        self.m, self.n = self.X.shape
        self.lam = float(lam)
        self.batch = None if batch is None else int(batch)
        self.stochastic = self.batch is not None
        self.reg = np.full(self.n, self.lam)
        self.reg[-1] = 0.0  # the bias is not penalized
        self.x_star = self._solve()
        self.f_star = self.f(self.x_star)

    def _margins(self, x, X=None, s=None):
        X = self.X if X is None else X
        s = self.s if s is None else s
        return s * (X @ x)

    def f(self, x):
        z = self._margins(x)
        return float(np.logaddexp(0.0, -z).mean() + 0.5 * (self.reg * x * x).sum())

    def _grad(self, x, X, s):
        z = s * (X @ x)
        return X.T @ (-s * np.exp(-np.logaddexp(0.0, z))) / len(s) + self.reg * x

    def grad(self, x):
        return self._grad(x, self.X, self.s)

    def train_grad(self, x, rng=None, k=0):
        if self.batch is None or rng is None:
            return self.grad(x)
        idx = rng.integers(0, self.m, self.batch)
        return self._grad(x, self.X[idx], self.s[idx])

    def hess(self, x):
        p = np.exp(-np.logaddexp(0.0, -(self.X @ x)))  # sigmoid
        w = p * (1 - p)
        return (self.X.T * w) @ self.X / self.m + np.diag(self.reg)

    def _solve(self):
        """Damped Newton (Alg. 8.8 with backtracking) until the gradient stops shrinking."""
        x = np.zeros(self.n)
        gmax = np.inf
        for _ in range(60):
            g = self.grad(x)
            if np.abs(g).max() >= gmax and gmax < 1e-10:
                break
            gmax = min(gmax, np.abs(g).max())
            step = np.linalg.solve(self.hess(x), g)
            t, f0 = 1.0, self.f(x)
            for _ in range(30):  # below round-off of J, take the full Newton step
                if g @ step < 1e-13 * (1 + abs(f0)) or self.f(x - t * step) <= f0 - 0.25 * t * (g @ step):
                    break
                t *= 0.5
            x = x - t * step
        return x

    def x0(self, seed):
        return 0.5 * np.random.default_rng(seed).standard_normal(self.n)


# ------------------------------------------------------------------------------ MLP
INITS = ("uniform", "glorot", "orthogonal", "sparse", "lsuv", "small")


def _init_weight(kind, n_in, n_out, rng, activation):
    """One dense weight (n_in, n_out) by a strategy of sec. 8.4 (``dlbench.optim.init``)."""
    from dlbench.optim import init as oi

    shape = (n_out, n_in)  # optim.init's layout: (n_out, n_in)
    if kind == "uniform":
        w = oi.uniform_fan_in(shape, rng=rng, dtype=np.float64)
    elif kind in ("glorot", "lsuv"):  # LSUV starts orthogonal itself; glorot as a placeholder here
        w = oi.glorot_uniform(shape, rng=rng, dtype=np.float64)
    elif kind == "orthogonal":
        w = oi.orthogonal(shape, gain=oi.gain(activation), rng=rng, dtype=np.float64)
    elif kind == "sparse":
        w = oi.sparse(shape, k=min(15, n_in), rng=rng, dtype=np.float64)
    elif kind == "small":
        w = 1e-3 * rng.standard_normal(shape)
    else:
        raise ValueError(f"unknown init {kind!r}; known: {', '.join(INITS)}")
    return np.asarray(w, dtype=np.float64).T


class _MLPBase(Problem):
    """Dense network with ``activation`` hidden layers and a softmax output, on a flat θ."""

    stochastic = True
    reference_loss = 0.0
    target_loss = 0.05
    eval_every = 10
    lr_grid = _grid(-3, 0.5)
    max_iters = 3000

    def _setup(self, X, y, sizes, activation, batch):
        self.X, self.y = X, y
        self.m = len(X)
        self.Y = np.eye(int(y.max()) + 1)[y]
        self.sizes = tuple(int(s) for s in sizes)
        self.activation = activation
        self.batch = int(batch)
        self.shapes = []
        for a, b in zip(self.sizes[:-1], self.sizes[1:]):
            self.shapes += [(a, b), (b,)]
        self.n = int(sum(np.prod(s) for s in self.shapes))
        offs = np.cumsum([0] + [int(np.prod(s)) for s in self.shapes])
        self.blocks = [np.arange(offs[2 * i], offs[2 * i + 2]) for i in range(len(self.sizes) - 1)]
        self._offs = offs
        self.classes = np.bincount(y, minlength=self.Y.shape[1]) / len(y)

    def unpack(self, x):
        """[(W_1, b_1), ...] as views of θ; W_l has shape (n_in, n_out)."""
        arrs = [x[self._offs[i] : self._offs[i + 1]].reshape(s) for i, s in enumerate(self.shapes)]
        return list(zip(arrs[0::2], arrs[1::2]))

    def _act(self, z):
        return np.tanh(z) if self.activation == "tanh" else np.maximum(z, 0.0)

    def _dact(self, z, h):
        return 1.0 - h * h if self.activation == "tanh" else (z > 0).astype(z.dtype)

    def _loss_grad(self, x, X, Y, need_grad=True):
        layers = self.unpack(x)
        hs, zs = [X], []
        h = X
        for i, (W, b) in enumerate(layers):
            z = h @ W + b
            zs.append(z)
            h = z if i == len(layers) - 1 else self._act(z)
            hs.append(h)
        logp = _log_softmax(hs[-1])
        loss = float(-(Y * logp).sum() / len(X))
        if not need_grad:
            return loss, None
        g = np.empty_like(x)
        grads = self.unpack(g)
        d = (np.exp(logp) - Y) / len(X)
        for i in range(len(layers) - 1, -1, -1):
            W, _ = layers[i]
            grads[i][0][...] = hs[i].T @ d
            grads[i][1][...] = d.sum(0)
            if i:
                d = (d @ W.T) * self._dact(zs[i - 1], hs[i])
        return loss, g

    def f(self, x):
        with np.errstate(over="ignore", invalid="ignore"):
            return self._loss_grad(x, self.X, self.Y, need_grad=False)[0]

    def grad(self, x):
        with np.errstate(over="ignore", invalid="ignore"):
            return self._loss_grad(x, self.X, self.Y)[1]

    def _sample(self, rng, k):
        return rng.integers(0, self.m, self.batch)

    def train_grad(self, x, rng=None, k=0):
        if rng is None:
            return self.grad(x)
        idx = self._sample(rng, k)
        with np.errstate(over="ignore", invalid="ignore"):
            return self._loss_grad(x, self.X[idx], self.Y[idx])[1]

    def _init_params(self, seed, init):
        rng = np.random.default_rng(seed)
        x = np.zeros(self.n)
        layers = self.unpack(x)
        for (W, _), (a, c) in zip(layers, zip(self.sizes[:-1], self.sizes[1:])):
            W[...] = _init_weight(init, a, c, rng, self.activation)
        if init == "lsuv":  # Mishkin & Matas 2015 on one minibatch of 128 examples
            from dlbench.optim import init as oi

            Ws = [np.ascontiguousarray(W.T) for W, _ in layers[:-1]]
            xb = self.X[rng.choice(self.m, 128, replace=False)]
            oi.lsuv(Ws, xb, oi.mlp_forward(self.activation), rng=rng)
            for (W, _), Wt in zip(layers, Ws):
                W[...] = Wt.T
        # output bias from the class marginals: softmax(b) = c (sec. 8.4)
        b = np.log(self.classes)
        layers[-1][1][...] = b - b.mean()
        return x


@register("mlp_digits")
class MLPDigits(_MLPBase):
    """A tanh MLP 64 → hidden → 10 on scikit-learn's digits, softmax cross-entropy, minibatches.

    ``init`` (sec. 8.4): "uniform" U(−1/√m, 1/√m), "glorot" (eq. 8.23), "orthogonal" (gain 5/3
    for tanh, Saxe et al. 2013), "sparse" (15 non-zeros per unit, Martens 2010), "lsuv" (Mishkin
    & Matas 2015), "small" N(0, 1e-6) — nearly symmetric, the failure sec. 8.4 warns about; in
    every case the output bias matches the class marginals and other biases are 0.
    ``curriculum`` (sec. 8.7.6): minibatches first favour easy examples (small distance to their
    class centroid relative to the nearest other centroid), then mix in hard ones — the
    stochastic curriculum of Zaremba & Sutskever: a share u(k) = 0.2 + 0.8 min(1, k / ramp) of
    each batch is drawn from all examples, the rest from the easiest 30 %.
    J is the full-training-set cross-entropy; target 0.05 (reference: the infimum 0).
    """

    section = "8.4"

    def __init__(
        self,
        hidden: tuple | list = (32,),
        init: str = "glorot",
        activation: str = "tanh",
        batch: int = 64,
        curriculum: bool = False,
        ramp: int = 1000,
    ):
        super().__init__(
            hidden=list(hidden),
            init=init,
            activation=activation,
            batch=batch,
            curriculum=curriculum,
            ramp=ramp,
        )
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; known: {', '.join(INITS)}")
        if activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu', got {activation!r}")
        X, y = _dataset("digits")
        X = X / 16.0
        X = X - X.mean(0)
        self._setup(X, y, (64, *hidden, 10), activation, batch)
        self.init, self.curriculum, self.ramp = init, bool(curriculum), int(ramp)
        if self.curriculum:
            self.easy = self._easy_pool(0.3)

    def _easy_pool(self, share):
        cent = np.stack([self.X[self.y == c].mean(0) for c in range(10)])
        d = ((self.X[:, None, :] - cent[None]) ** 2).sum(-1)
        own = d[np.arange(self.m), self.y]
        d[np.arange(self.m), self.y] = np.inf
        ratio = own / d.min(1)
        return np.argsort(ratio)[: int(share * self.m)]

    def uniform_share(self, k: int) -> float:
        """Share of each minibatch drawn from all examples at iteration k (the rest: easy ones)."""
        return 0.2 + 0.8 * min(1.0, k / max(self.ramp, 1))

    def _sample(self, rng, k):
        if not self.curriculum:
            return rng.integers(0, self.m, self.batch)
        n_all = int(round(self.uniform_share(k) * self.batch))
        return np.concatenate(
            [rng.integers(0, self.m, n_all), self.easy[rng.integers(0, len(self.easy), self.batch - n_all)]]
        )

    def x0(self, seed):
        return self._init_params(seed, self.init)


# ------------------------------------------------------------------------------ CNN
def im2col_3x3(x):
    """(N, C, H, W) → (N·H·W, C·9) patches of a 3 × 3 'same' convolution (zero padding 1)."""
    from numpy.lib.stride_tricks import sliding_window_view

    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    p = sliding_window_view(xp, (3, 3), axis=(2, 3))  # N, C, H, W, 3, 3
    return p.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * w, c * 9)


def col2im_3x3(cols, shape):
    """Adjoint of :func:`im2col_3x3`: scatter-add (N·H·W, C·9) back to (N, C, H, W)."""
    n, c, h, w = shape
    cols = cols.reshape(n, h, w, c, 3, 3)
    xp = np.zeros((n, c, h + 2, w + 2))
    for r in range(3):
        for s in range(3):
            xp[:, :, r : r + h, s : s + w] += cols[:, :, :, :, r, s].transpose(0, 3, 1, 2)
    return xp[:, :, 1:-1, 1:-1]


@register("cnn_digits")
class CNNDigits(_MLPBase):
    """A small CNN on the 8 × 8 digits: conv 3 × 3 × ``channels`` (same padding, eq. 9.7) → ReLU →
    2 × 2 average pooling (sec. 9.3) → dense 10-way softmax.

    The convolution is computed by im2col + GEMM in NumPy (a local copy, tested equal to
    ``dlbench.ops.conv2d``'s reference: at batch 32 the front-end costs more than the
    arithmetic). θ = [K (channels × 1 × 3 × 3), b_conv, W (16·channels × 10), b]. Glorot
    initialization; output bias from the class marginals. Target: cross-entropy 0.1.
    """

    section = "9.3"
    target_loss = 0.1
    eval_every = 25
    max_iters = 2000

    def __init__(self, channels: int = 8, batch: int = 32):
        super().__init__(channels=channels, batch=batch)
        X, y = _dataset("digits")
        X = X / 16.0
        X = (X - X.mean()).reshape(-1, 1, 8, 8)
        self.c = int(channels)
        self.X, self.y, self.m, self.batch = X, y, len(X), int(batch)
        self.Y = np.eye(10)[y]
        self.shapes = [(self.c, 9), (self.c,), (self.c * 16, 10), (10,)]
        self._offs = np.cumsum([0] + [int(np.prod(s)) for s in self.shapes])
        self.n = int(self._offs[-1])
        self.blocks = [np.arange(self._offs[0], self._offs[2]), np.arange(self._offs[2], self._offs[4])]
        self.classes = np.bincount(y, minlength=10) / len(y)

    def unpack(self, x):
        """(K (channels, 9), b_conv, W (16·channels, 10), b) as views of θ."""
        return [x[self._offs[i] : self._offs[i + 1]].reshape(s) for i, s in enumerate(self.shapes)]

    def _loss_grad(self, x, X, Y, need_grad=True):
        K, bc, W, b = self.unpack(x)
        n = len(X)
        cols = im2col_3x3(X)  # (n·64, 9)
        z = cols @ K.T + bc  # (n·64, c)
        a = np.maximum(z, 0.0)
        a4 = a.reshape(n, 8, 8, self.c)
        pooled = a4.reshape(n, 4, 2, 4, 2, self.c).mean((2, 4))  # (n, 4, 4, c)
        feat = pooled.reshape(n, 16 * self.c)
        logp = _log_softmax(feat @ W + b)
        loss = float(-(Y * logp).sum() / n)
        if not need_grad:
            return loss, None
        g = np.empty_like(x)
        gK, gbc, gW, gb = self.unpack(g)
        d = (np.exp(logp) - Y) / n
        gW[...] = feat.T @ d
        gb[...] = d.sum(0)
        dfeat = (d @ W.T).reshape(n, 4, 1, 4, 1, self.c) / 4.0
        da = np.broadcast_to(dfeat, (n, 4, 2, 4, 2, self.c)).reshape(n * 64, self.c)
        dz = da * (z > 0)
        gK[...] = dz.T @ cols
        gbc[...] = dz.sum(0)
        return loss, g

    def conv_forward(self, x, X):
        """The convolution layer's pre-activations (N, channels, 8, 8), for tests against ops.conv2d."""
        K, bc, _, _ = self.unpack(x)
        z = im2col_3x3(X) @ K.T + bc
        return z.reshape(len(X), 8, 8, self.c).transpose(0, 3, 1, 2)

    def x0(self, seed):
        from dlbench.optim import init as oi

        rng = np.random.default_rng(seed)
        x = np.zeros(self.n)
        K, bc, W, b = self.unpack(x)
        K[...] = oi.glorot_uniform((self.c, 1, 3, 3), rng=rng, dtype=np.float64).reshape(self.c, 9)
        W[...] = oi.glorot_uniform((10, 16 * self.c), rng=rng, dtype=np.float64).T
        lb = np.log(self.classes)
        b[...] = lb - lb.mean()
        return x
