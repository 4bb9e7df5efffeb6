"""The measurement heap policy: freed large buffers are reused, so a repeated large output costs no
page faults (checked by counting minor faults with getrusage)."""

import platform
import resource

import numpy as np
import pytest

from dlbench.allocator import empty_aligned, keep_freed_memory

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


@pytest.fixture
def small_pages():
    """NumPy asks for huge pages on large arrays (faults per 2 MiB); count 4 KiB faults instead."""
    mod = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    old = mod._set_madvise_hugepage(False)
    yield
    mod._set_madvise_hugepage(old)


def _faults_of_fresh_output(nbytes):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.empty(nbytes // 8)
    a.fill(1.0)  # first touch of every page
    del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@glibc
def test_keep_freed_memory_reuses_pages_of_a_freed_64mb_buffer(small_pages):
    pages = (64 << 20) // resource.getpagesize()
    import dlbench.allocator as al

    if al._applied is None:  # not applied yet in this process: a fresh mmap faults on every page
        assert _faults_of_fresh_output(64 << 20) > pages // 2
    rec = keep_freed_memory()
    assert rec["policy"] == "reuse-freed" and rec["mmap_threshold"] >= 1 << 26
    assert keep_freed_memory() == rec  # idempotent
    nbytes = 64 << 20
    _faults_of_fresh_output(nbytes)  # the heap grows once
    assert _faults_of_fresh_output(nbytes) < pages // 20  # reused: (almost) no new faults


def test_keep_freed_memory_rejects_bad_thresholds(monkeypatch):
    import dlbench.allocator as al

    monkeypatch.setattr(al, "_applied", None)
    with pytest.raises(ValueError, match="thresholds"):
        al.keep_freed_memory(threshold_bytes=0)


@pytest.mark.parametrize("dtype,align", [("float32", 64), ("float64", 32), ("int64", 4096)])
@pytest.mark.parametrize("shape", [(0,), (3, 5), (2, 3, 7, 9)])
def test_empty_aligned_starts_on_the_boundary(shape, dtype, align):
    a = empty_aligned(shape, dtype, align)
    assert a.shape == shape and a.dtype == np.dtype(dtype)
    assert a.flags["C_CONTIGUOUS"] and a.flags["WRITEABLE"]
    if a.size:
        assert a.ctypes.data % align == 0
        a[...] = 1                               # the whole view is writable memory
        assert a.sum() == a.size


@pytest.mark.parametrize("align", [0, 24, 2])
def test_empty_aligned_rejects_bad_alignments(align):
    with pytest.raises(ValueError, match="align must be"):
        empty_aligned((4,), "float32", align)
