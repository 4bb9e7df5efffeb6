"""Parameter initialization (sec. 8.4).

Weight shapes follow the ops' layout: a dense layer is ``(n_out, n_in)`` (m = n_in inputs,
n = n_out outputs), a convolution kernel ``(out_channels, in_channels, *kernel)`` with
fan_in = in_channels * prod(kernel) and fan_out = out_channels * prod(kernel). ``rng`` is a seed,
a ``numpy.random.Generator`` or None; ``dtype`` defaults to float32.

* :func:`uniform_fan_in` -- U(-1/sqrt(m), 1/sqrt(m));
* :func:`glorot_uniform` -- normalized initialization, eq. 8.23: U(-sqrt(6/(m+n)), sqrt(6/(m+n)));
* :func:`orthogonal` -- a random orthogonal matrix times a gain (Saxe et al. 2013), :func:`gain`;
* :func:`sparse` -- exactly k non-zero incoming weights per unit (Martens 2010);
* :func:`output_bias_from_marginals` -- output biases with softmax(b) = c (or sigmoid(b) = c);
* :func:`lsuv` -- layer-sequential unit variance (Mishkin & Matas 2015): orthogonal weights,
  then each layer rescaled in turn until its output variance on one minibatch is 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

_NONLIN_GAIN = {"linear": 1.0, "identity": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3.0,
                "relu": math.sqrt(2.0), "leaky_relu": math.sqrt(2.0 / (1 + 0.01 ** 2)), "selu": 0.75}


def _rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _shape(shape) -> tuple[int, ...]:
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
    if len(shape) < 2 or any(s < 1 for s in shape):
        raise ValueError(f"a weight shape needs >= 2 positive dimensions (n_out, n_in, *kernel), got {shape}")
    return shape


def fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of ``shape`` = (n_out, n_in, *kernel)."""
    shape = _shape(shape)
    k = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * k, shape[0] * k


def gain(nonlinearity: str = "linear") -> float:
    """Recommended gain g of orthogonal / scaled init for a nonlinearity (linear, sigmoid, tanh,
    relu, leaky_relu, selu), as tabulated by torch.nn.init.calculate_gain."""
    try:
        return _NONLIN_GAIN[nonlinearity]
    except KeyError:
        raise ValueError(f"unknown nonlinearity {nonlinearity!r}; known: {', '.join(_NONLIN_GAIN)}") from None


def uniform_fan_in(shape, rng=None, dtype=np.float32) -> np.ndarray:
    """W ~ U(-1/sqrt(m), 1/sqrt(m)) with m = fan_in (the heuristic of sec. 8.4)."""
    m, _ = fans(shape)
    a = 1.0 / math.sqrt(m)
    return _rng(rng).uniform(-a, a, size=_shape(shape)).astype(dtype)


def glorot_uniform(shape, rng=None, dtype=np.float32, gain: float = 1.0) -> np.ndarray:
    """Normalized initialization, eq. 8.23: W ~ U(-g sqrt(6/(m+n)), g sqrt(6/(m+n))).

    Variance g^2 2/(m+n): the compromise between equal activation and gradient variance.
    """
    m, n = fans(shape)
    a = gain * math.sqrt(6.0 / (m + n))
    return _rng(rng).uniform(-a, a, size=_shape(shape)).astype(dtype)


def orthogonal(shape, gain: float = 1.0, rng=None, dtype=np.float32) -> np.ndarray:
    """A random orthogonal weight times ``gain`` (Saxe et al. 2013).

    The weight is viewed as a matrix (n_out, fan_in / ...) = (shape[0], prod(shape[1:])); its rows
    are orthonormal if n_out <= the other side, its columns otherwise (QR of a Gaussian matrix with
    the sign of diag(R) fixed, so the result is uniform over the orthogonal group).
    """
    shape = _shape(shape)
    rows, cols = shape[0], int(np.prod(shape[1:]))
    a = _rng(rng).standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape).astype(dtype)


def sparse(shape, k: int, scale: float = 1.0, rng=None, dtype=np.float32) -> np.ndarray:
    """Sparse initialization (Martens 2010): each unit (row) gets exactly k non-zero incoming
    weights, N(0, scale^2), at random inputs; the rest are 0. k <= fan_in (Martens: k = 15)."""
    shape = _shape(shape)
    rows, cols = shape[0], int(np.prod(shape[1:]))
    k = int(k)
    if not 1 <= k <= cols:
        raise ValueError(f"k must be in [1, {cols}] (the number of inputs per unit), got {k}")
    g = _rng(rng)
    w = np.zeros((rows, cols), dtype=np.float64)
    for i in range(rows):
        idx = g.choice(cols, size=k, replace=False)
        w[i, idx] = scale * g.standard_normal(k)
    return w.reshape(shape).astype(dtype)


def output_bias_from_marginals(c, kind: str = "softmax", dtype=np.float32) -> np.ndarray:
    """Output biases matching the marginal statistics of the targets (sec. 8.4).

    kind="softmax": c is a probability vector over classes; returns b with softmax(b) = c
    (b = log c, centred). kind="sigmoid": c holds per-output probabilities of 1; returns
    b = log(c / (1 - c)) so that sigmoid(b) = c.
    """
    c = np.asarray(c, dtype=np.float64)
    if c.ndim != 1 or c.size == 0 or np.any(~(c > 0)) or np.any(c >= 1 if kind == "sigmoid" else c > 1):
        raise ValueError("c must be a 1-D array of probabilities in (0, 1)")
    if kind == "softmax":
        if abs(c.sum() - 1.0) > 1e-6:
            raise ValueError(f"softmax marginals must sum to 1, got {c.sum()}")
        b = np.log(c)
        return (b - b.mean()).astype(dtype)
    if kind == "sigmoid":
        return np.log(c / (1 - c)).astype(dtype)
    raise ValueError(f"kind must be 'softmax' or 'sigmoid', got {kind!r}")


def mlp_forward(activation: str = "relu") -> Callable:
    """forward(weights, x) -> per-layer pre-activations of an MLP without biases, for :func:`lsuv`.

    weights[l] has shape (n_out, n_in); x has shape (batch, n_in of layer 0).
    """
    acts = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "linear": lambda z: z,
            "sigmoid": lambda z: 1 / (1 + np.exp(-z))}
    if activation not in acts:
        raise ValueError(f"unknown activation {activation!r}; known: {', '.join(acts)}")
    act = acts[activation]

    def forward(weights, x):
        outs, h = [], x
        for w in weights:
            z = h @ np.asarray(w).reshape(w.shape[0], -1).T
            outs.append(z)
            h = act(z)
        return outs

    return forward


def lsuv(weights: Sequence[np.ndarray], x: np.ndarray, forward: Callable, target_var: float = 1.0,
         tol: float = 0.05, max_iter: int = 10, orthogonal_init: bool = True, rng=None) -> list[float]:
    """Layer-sequential unit-variance initialization (Mishkin & Matas 2015) on one minibatch x.

    weights: list of weight arrays, modified in place; forward(weights, x) returns the list of
    layer outputs (one per weight, e.g. :func:`mlp_forward`). With orthogonal_init each weight
    is first replaced by an orthogonal matrix; then, layer by layer, W_l <- W_l / sqrt(Var(out_l))
    until |Var(out_l) - target_var| <= tol * target_var (at most max_iter rescalings per layer).
    Returns the final output variance of each layer.
    """
    if not target_var > 0 or not tol > 0:
        raise ValueError("target_var and tol must be > 0")
    g = _rng(rng)
    if orthogonal_init:
        for w in weights:
            w[...] = orthogonal(w.shape, rng=g, dtype=w.dtype)
    variances = []
    for layer in range(len(weights)):
        for _ in range(max_iter):
            var = float(np.var(forward(weights, x)[layer]))
            if not var > 0 or not math.isfinite(var):
                raise ValueError(f"layer {layer} output variance is {var}; LSUV cannot rescale it")
            if abs(var - target_var) <= tol * target_var:
                break
            weights[layer] *= math.sqrt(target_var / var)
        variances.append(float(np.var(forward(weights, x)[layer])))
    return variances
