"""Build script: maps kernels/ and suites/ under the dlbench package and compiles the Cython
kernels with OpenMP (-O3 -fopenmp). Where the compiler has no OpenMP the extensions are built
serial; ``dlbench.kernels.cython`` then says so at import (see ``openmp_enabled()``)."""

import os
import shutil
import subprocess
import sys
import tempfile
from glob import glob

import numpy as np
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class parallel_build_ext(build_ext):
    """Compile the extensions in parallel on every core (pip gives no -j option)."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1

HERE = os.path.dirname(os.path.abspath(__file__))
MAPPING = {"dlbench": "dlbench", "dlbench.kernels": "kernels", "dlbench.suites": "suites"}


def find_packages_mapped():
    """Every directory holding an __init__.py under the mapped roots, as dotted names."""
    packages = []
    for pkg, root in MAPPING.items():
        for dirpath, dirnames, filenames in os.walk(os.path.join(HERE, root)):
            dirnames[:] = [d for d in dirnames if not d.startswith((".", "__"))]
            if "__init__.py" in filenames:
                rel = os.path.relpath(dirpath, os.path.join(HERE, root))
                packages.append(pkg if rel == "." else pkg + "." + rel.replace(os.sep, "."))
    return sorted(packages)


def openmp_flags():
    """Return (compile_args, link_args) for OpenMP, or ([], []) when the compiler lacks it."""
    if os.environ.get("DLBENCH_NO_OPENMP"):
        return [], []
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return [], []
    src = "#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n"
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.c")
        with open(path, "w") as f:
            f.write(src)
        ok = subprocess.run([cc, "-fopenmp", path, "-o", os.path.join(d, "t")],
                            capture_output=True).returncode == 0
    if not ok:
        print("dlbench: the C compiler has no OpenMP; building the Cython kernels serial", file=sys.stderr)
        return [], []
    return ["-fopenmp"], ["-fopenmp"]


def extensions():
    from Cython.Build import cythonize

    omp_c, omp_l = openmp_flags()
    # Kernels are built on the machine that runs them (like BLAS); DLBENCH_PORTABLE=1 gives a
    # generic x86-64 build for a wheel that must run elsewhere.
    arch = [] if os.environ.get("DLBENCH_PORTABLE") else ["-march=native"]
    exts = []
    only = os.environ.get("DLBENCH_PYX")  # e.g. DLBENCH_PYX=conv* to rebuild a subset in place
    for pyx in sorted(glob(os.path.join("kernels", "cython", only or "*.pyx"))):
        name = "dlbench.kernels.cython." + os.path.splitext(os.path.basename(pyx))[0]
        exts.append(Extension(
            name, [pyx],
            include_dirs=[np.get_include(), os.path.join("kernels", "cython")],
            extra_compile_args=["-O3", "-ffp-contract=fast", *arch, *omp_c],
            extra_link_args=omp_l,
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        ))
    return cythonize(exts, language_level=3, nthreads=os.cpu_count() or 1, compiler_directives={
        "boundscheck": False, "wraparound": False, "cdivision": True, "initializedcheck": False})


setup(
    packages=find_packages_mapped(),
    package_dir=MAPPING,
    package_data={"dlbench.kernels.cython": ["*.pyx", "*.pxd", "*.h"]},
    ext_modules=extensions(),
    cmdclass={"build_ext": parallel_build_ext},
)
