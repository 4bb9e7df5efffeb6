"""numba.cuda kernels. On a machine without a GPU they run on the CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1`` set before numba is imported) for correctness only, never timed."""
