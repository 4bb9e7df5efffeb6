"""Registers the Cython + OpenMP convolution primitives (``conv.pyx``) with the shared drivers.

Every (op, algorithm) of the numba backend exists for ``cython`` too: the drivers in
``dlbench.kernels.numba_cpu.conv_drivers`` call these compiled primitives instead.
"""

from types import SimpleNamespace

from dlbench.kernels.cython import conv as _cy
from dlbench.kernels.numba_cpu.conv_drivers import register_family

PRIMITIVES = SimpleNamespace(pad=_cy.pad, im2col=_cy.im2col, col2im=_cy.col2im, phase_split=_cy.phase_split,
                             phase_merge=_cy.phase_merge, direct_fwd=_cy.direct_fwd,
                             direct_bwd_data=_cy.direct_bwd_data, direct_bwd_weight=_cy.direct_bwd_weight,
                             nhwc_pad=_cy.nhwc_pad, wino_weight=_cy.wino_weight, wino_in=_cy.wino_in,
                             wino_out=_cy.wino_out, cmul=_cy.cmul, separable=_cy.separable)

ORIGIN = "Cython + OpenMP" + (", AVX2/FMA register blocks" if _cy.simd_kernels() else "")
register_family("cython", PRIMITIVES, ORIGIN)
