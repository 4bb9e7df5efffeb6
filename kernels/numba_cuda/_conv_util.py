"""Shared machinery of the numba.cuda convolution-family kernels (conv, tiled/local, pool, batch norm).

- :class:`DeviceIO`: device views of a call's arrays. Device inputs (numba device arrays, any
  ``__cuda_array_interface__`` object such as a torch CUDA tensor, the simulator's fake device
  arrays) pass through without copies and results stay on the device; NumPy inputs are copied in
  and the results copied back (the host-to-host metric times those copies).
- :func:`scratch` / :func:`device_table`: per-thread caches of scratch buffers (split-K partial
  sums, per-channel partial statistics) and of small index tables, so that repeated calls on one
  problem allocate and upload nothing. Work is stream-ordered on the default stream, so reusing a
  scratch buffer in the next call is safe.
- :func:`make_igemm`: the shared-memory tiled GEMM skeleton behind every implicit-GEMM kernel
  (conv forward / backward-data / backward-weight, tiled convolution). A block computes a BM x BN
  tile of C = A B, each thread a TM x TN register block (rows ``ty + i*BM/TM``, columns
  ``tx + j*BN/TN``: conflict-free shared reads, coalesced stores). The operands are never
  materialised: problem-specific device functions map (row, k) of A and (k, column) of B to
  flat offsets in the source arrays (-1 = zero padding), which is the im2col of the implicit
  GEMM. A loads run along k (contiguous weight rows), B loads along the columns (consecutive
  output positions: coalesced input reads at unit stride). Split-K over ``gridDim.z`` writes
  partial tiles that :func:`sum_splits` adds up, so small-output / long-reduction problems (the
  weight gradient, deep 7x7 layers) still fill the GPU.

Under the simulator (``NUMBA_ENABLE_CUDASIM=1``: every GPU thread is a Python thread) the same
code runs with 4-thread blocks and tiny tiles, for correctness only.
"""

from __future__ import annotations

import functools
import math
import os
import threading
import weakref

import numpy as np
from numba import cuda, float32, float64

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
NUMBA_DTYPES = {np.dtype(np.float32): float32, np.dtype(np.float64): float64}

# Tile configurations (BM, BN, BK, TM, TN) of the implicit GEMM, by dtype and problem width.
if SIMULATOR:
    CFG = {("float32", "wide"): (4, 4, 4, 2, 2), ("float32", "narrow"): (4, 4, 4, 2, 2),
           ("float64", "wide"): (4, 4, 4, 2, 2), ("float64", "narrow"): (4, 4, 4, 2, 2)}
    APAD = 1
    THREADS = 4          # threads per block of the 1-D / reduction kernels
    MAX_BLOCKS = 2
else:
    CFG = {("float32", "wide"): (64, 64, 16, 8, 8),      # 64 threads, 8x8 outputs each
           ("float32", "narrow"): (32, 128, 16, 4, 8),   # M <= 32 (few output channels)
           ("float64", "wide"): (64, 64, 8, 4, 4),       # 256 threads, fewer registers per thread
           ("float64", "narrow"): (32, 64, 8, 4, 4)}
    APAD = 4             # shared-memory padding of the A tile (bank conflicts of its stores)
    THREADS = 256
    MAX_BLOCKS = 65535


# ------------------------------------------------------------------ device views
def is_device(a) -> bool:
    """True for numba device arrays (real or simulated) and ``__cuda_array_interface__`` objects."""
    if a is None or isinstance(a, np.ndarray):
        return False
    return hasattr(a, "__cuda_array_interface__") or hasattr(a, "copy_to_host")


def as_device(a):
    """A device view of ``a`` (no copy for device inputs; NumPy arrays are copied)."""
    if is_device(a):
        d = a if hasattr(a, "copy_to_host") else cuda.as_cuda_array(a)
        if not d.is_c_contiguous():
            raise ValueError("device inputs must be C-contiguous")
        return d
    return cuda.to_device(np.ascontiguousarray(a))


class DeviceIO:
    """Device views of one call's arrays; ``out(dev)`` returns results the way the inputs came.

    ``host`` is True when no input was a device array: results are then copied back to NumPy.
    """

    def __init__(self, *arrays):
        self.host = not any(is_device(a) for a in arrays if a is not None)
        self.arrays = [None if a is None else as_device(a) for a in arrays]

    def out(self, *devs):
        res = tuple(d.copy_to_host() if self.host else d for d in devs)
        return res[0] if len(res) == 1 else res


_flat_views: dict = {}


def flat(d):
    """1-D view of a C-contiguous device array.

    ``DeviceNDArray.reshape`` costs tens of microseconds of Python, paid on every call of a
    kernel on device-resident inputs; the view is cached per array object (weakly: the entry
    goes away with the array) so repeated calls on the same buffers skip it.
    """
    if len(d.shape) == 1:
        return d
    key = id(d)
    hit = _flat_views.get(key)
    if hit is not None and hit[0]() is d:
        return hit[1]
    view = d.reshape(d.size)
    try:
        ref = weakref.ref(d, lambda _r, k=key: _flat_views.pop(k, None))
    except TypeError:          # not weak-referenceable: no caching
        return view
    _flat_views[key] = (ref, view)
    return view


def dtype_of(d) -> np.dtype:
    return np.dtype(d.dtype)


def empty(shape, dtype):
    return cuda.device_array(tuple(int(s) for s in shape), dtype=np.dtype(dtype))


def check_out(out, shape, dtype):
    """A caller-provided output buffer (device array of the right shape/dtype), or a new one."""
    if out is None:
        return empty(shape, dtype)
    d = as_device(out) if is_device(out) else None
    if d is None or tuple(d.shape) != tuple(shape) or np.dtype(d.dtype) != np.dtype(dtype):
        raise ValueError(f"out must be a device array of shape {tuple(shape)} and dtype {np.dtype(dtype)}")
    return d


_local = threading.local()


def _cache():
    if not hasattr(_local, "scratch"):
        _local.scratch = {}
        _local.tables = {}
    return _local


def scratch(tag: str, shape, dtype):
    """A device buffer reused across calls (per thread, tag, shape, dtype); contents undefined."""
    key = (tag, tuple(int(s) for s in shape), np.dtype(dtype).str)
    c = _cache().scratch
    if key not in c:
        if len(c) > 64:
            c.clear()
        c[key] = empty(shape, dtype)
    return c[key]


def device_table(key, build):
    """The device copy of the host table ``build()`` (cached per thread by ``key``)."""
    c = _cache().tables
    if key not in c:
        if len(c) > 256:
            c.clear()
        c[key] = cuda.to_device(np.ascontiguousarray(build()))
    return c[key]


def launch_1d(n: int, threads: int = THREADS):
    """(blocks, threads) of a grid-stride loop over n items (2 x 4 under the simulator)."""
    if SIMULATOR:
        return MAX_BLOCKS, THREADS
    return max(1, min(MAX_BLOCKS, -(-int(n) // threads))), threads


def num_sms() -> int:
    if SIMULATOR:
        return 1
    if not hasattr(_local, "sms"):
        try:
            _local.sms = int(cuda.get_current_device().MULTIPROCESSOR_COUNT)
        except Exception:  # noqa: BLE001
            _local.sms = 80
    return _local.sms


# ------------------------------------------------------------------ small generic kernels
_kernels: dict = {}


def per_dtype(name: str, factory, dt):
    """``factory(numba_type)`` compiled once per (name, dtype)."""
    key = (name, np.dtype(dt).str)
    if key not in _kernels:
        _kernels[key] = factory(NUMBA_DTYPES[np.dtype(dt)])
    return _kernels[key]


def _make_sum_splits(dt):
    @cuda.jit(cache=False)
    def kern(part, out, splits, size):
        for i in range(cuda.grid(1), size, cuda.gridsize(1)):
            acc = dt(0)
            for s in range(splits):
                acc += part[s * size + i]
            out[i] = acc
    return kern


def sum_splits(part_flat, out_flat, splits: int):
    """out[i] = sum_s part[s * size + i] (flat device arrays)."""
    size = out_flat.size
    kern = per_dtype("sum_splits", _make_sum_splits, out_flat.dtype)
    kern[launch_1d(size)](part_flat, out_flat, splits, size)


def _make_fill(dt):
    @cuda.jit(cache=False)
    def kern(a, value):
        for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
            a[i] = value
    return kern


def fill(a_flat, value=0.0):
    """a[:] = value on the device."""
    dt = np.dtype(a_flat.dtype)
    per_dtype("fill", _make_fill, dt)[launch_1d(a_flat.size)](a_flat, dt.type(value))


# ------------------------------------------------------------------ implicit GEMM skeleton
def pick_config(dtype, m_rows: int):
    return CFG[(np.dtype(dtype).name, "narrow" if m_rows <= 32 else "wide")]


def make_igemm(dt, cfg, unpack, aidx, bdecode, bidx, sidx):
    """Compile the tiled GEMM C[m, col] = sum_k A[m, k] B[k, col] over index maps; returns
    (kernel, threads per block).

    unpack(geoa) -> the problem's geometry tuple from its device array (passed to the maps);
    aidx(tab, geo, g, m, k) -> offset of A[m, k] in ``asrc`` (or -1: zero);
    bdecode(tab, geo, g, col) -> a 4-tuple of ints describing column ``col`` (computed once per
    thread and block); bidx(tab, geo, g, st, k) -> offset of B[k, col] in ``bsrc`` (or -1);
    sidx(geo, g, split, m, col) -> offset of C[m, col] in ``out``.
    Launch: grid (ceil(NC/BN), ceil(M/BM), groups * splits), block BM*BN/(TM*TN) threads;
    group g = blockIdx.z // splits reduces k in [split*kchunk, min(KD, (split+1)*kchunk)).
    """
    BM, BN, BK, TM, TN = cfg
    NTX, NTY = BN // TN, BM // TM
    NT = NTX * NTY
    if NT % BK or NT % BN or (BM * BK) % NT or (BK * BN) % NT:
        raise ValueError(f"inconsistent tile configuration {cfg}")
    LA, LB = BM * BK // NT, BK * BN // NT
    ASTEP, BSTEP = NT // BK, NT // BN
    BMP = BM + APAD

    @cuda.jit(cache=False)
    def igemm(asrc, bsrc, out, tab, geoa, M, NC, KD, kchunk, splits):
        geo = unpack(geoa)
        As = cuda.shared.array((BK, BMP), dt)
        Bs = cuda.shared.array((BK, BN), dt)
        acc = cuda.local.array((TM, TN), dt)
        ra = cuda.local.array(TM, dt)
        rb = cuda.local.array(TN, dt)
        tid = cuda.threadIdx.x
        tx = tid % NTX
        ty = tid // NTX
        n0 = cuda.blockIdx.x * BN
        m0 = cuda.blockIdx.y * BM
        z = cuda.blockIdx.z
        g = z // splits
        sp = z - g * splits
        kbeg = sp * kchunk
        kend = min(KD, kbeg + kchunk)
        for i in range(TM):
            for j in range(TN):
                acc[i, j] = 0
        a_k = tid % BK
        a_m = tid // BK
        b_j = tid % BN
        b_k = tid // BN
        col = n0 + b_j
        bvalid = col < NC
        st = bdecode(tab, geo, g, col if bvalid else 0)
        for k0 in range(kbeg, kend, BK):
            for i in range(LA):
                m = a_m + i * ASTEP
                kk = k0 + a_k
                v = dt(0)
                if m0 + m < M and kk < kend:
                    off = aidx(tab, geo, g, m0 + m, kk)
                    if off >= 0:
                        v = asrc[off]
                As[a_k, m] = v
            for i in range(LB):
                kl = b_k + i * BSTEP
                kk = k0 + kl
                v = dt(0)
                if bvalid and kk < kend:
                    off = bidx(tab, geo, g, st, kk)
                    if off >= 0:
                        v = bsrc[off]
                Bs[kl, b_j] = v
            cuda.syncthreads()
            for kl in range(BK):
                for i in range(TM):
                    ra[i] = As[kl, ty + i * NTY]
                for j in range(TN):
                    rb[j] = Bs[kl, tx + j * NTX]
                for i in range(TM):
                    for j in range(TN):
                        acc[i, j] += ra[i] * rb[j]
            cuda.syncthreads()
        for i in range(TM):
            m = m0 + ty + i * NTY
            if m < M:
                for j in range(TN):
                    c = n0 + tx + j * NTX
                    if c < NC:
                        out[sidx(geo, g, sp, m, c)] = acc[i, j]

    return igemm, NT


_igemms: dict = {}


def igemm_kernel(name: str, dtype, cfg, maps):
    """(compiled skeleton, threads per block) for problem ``name`` (index maps ``maps``), dtype, config."""
    key = (name, np.dtype(dtype).str, cfg)
    if key not in _igemms:
        _igemms[key] = make_igemm(NUMBA_DTYPES[np.dtype(dtype)], cfg, *maps)
    return _igemms[key]


def choose_splits(tiles: int, kd: int, bk: int, force: int | None = None) -> int:
    """Split-K factor: at least two blocks per SM (the tiles alone leave SMs idle or unevenly loaded
    below that), each split at least 4 k-steps long; the partial tiles cost one extra pass over
    the output. Under the simulator every long-enough reduction is split in two (test coverage).
    """
    if force is not None:
        return max(1, int(force))
    if SIMULATOR:
        return 2 if kd > 2 * bk else 1
    if tiles >= 2 * num_sms():
        return 1
    want = -(-2 * num_sms() // max(tiles, 1))
    most = max(1, kd // (4 * bk))
    return int(max(1, min(want, most, 64)))


@functools.lru_cache(maxsize=512)
def igemm_plan(name, maps, dtype: str, M: int, NC: int, KD: int, groups: int, splits=None):
    """(configured kernel, kchunk, splits) of one implicit-GEMM problem (cached: no per-call work)."""
    cfg = pick_config(dtype, M)
    BM, BN, BK = cfg[:3]
    tiles = -(-NC // BN) * -(-M // BM) * groups
    sp = choose_splits(tiles, KD, BK, splits)
    kchunk = -(-max(KD, 1) // sp)
    kchunk = -(-kchunk // BK) * BK
    sp = max(1, -(-KD // kchunk))
    kern, threads = igemm_kernel(name, dtype, cfg, maps)
    grid = (-(-NC // BN), -(-M // BM), groups * sp)
    return kern[grid, threads], kchunk, sp


def run_igemm(name, maps, dtype, asrc, bsrc, out_flat, tab, geo, M, NC, KD, groups, splits=None, tag="igemm"):
    """Launch the implicit GEMM; with split-K the partial tiles go to scratch and are summed into out."""
    if KD == 0:
        fill(out_flat, 0.0)
        return
    launch, kchunk, sp = igemm_plan(name, maps, np.dtype(dtype).name, M, NC, KD, groups, splits)
    target = out_flat if sp == 1 else scratch(tag, (sp * out_flat.size,), dtype)
    launch(asrc, bsrc, target, tab, geo, M, NC, KD, kchunk, sp)
    if sp > 1:
        sum_splits(target, out_flat, sp)


def pow2_threads(n_max: int = THREADS) -> int:
    """Threads per block of the tree reductions (a power of two)."""
    return 1 << int(math.log2(n_max))
