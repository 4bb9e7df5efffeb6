"""numba.cuda optimizer updates: one thread per element, grid-stride loop, in place.

Accept NumPy arrays (copied to the device and back: host-to-host) or device arrays
(numba device arrays or any ``__cuda_array_interface__`` object: no copy).
"""

from numba import cuda

from dlbench.kernels.numba_cuda._util import DeviceArgs, launch_1d
from dlbench.registry import register_kernel


@cuda.jit(cache=False)
def _momentum(theta, v, g, lr, alpha):
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, theta.shape[0], stride):
        vi = alpha * v[i] - lr * g[i]
        v[i] = vi
        theta[i] += vi


@register_kernel("sgd_momentum", "fused", "numba-cuda")
def sgd_momentum(theta, v, g, lr, alpha):
    """Algorithm 8.2 on the GPU: v = alpha*v - lr*g; theta += v. Host arrays are copied in and out."""
    dev = DeviceArgs(theta, v, g)
    dt = dev.arrays[0].dtype.type
    _momentum[launch_1d(theta.shape[0])](*dev.arrays, dt(lr), dt(alpha))
    dev.copy_back(0, 1)
