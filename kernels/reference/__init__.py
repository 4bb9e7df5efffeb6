"""Pure NumPy reference kernels: the executable specification every other backend is tested against."""
