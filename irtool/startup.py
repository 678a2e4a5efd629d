"""Start-up cost of the commands: the cyclic garbage collector paused while modules load.

Why: importing numpy and xDSL makes some 100,000 long-lived objects (op, attribute and type
definitions). The collector's full passes over them while they load find nothing to free and
cost about a tenth of `irtool compile`'s CPU for a small model (more on a loaded machine, where
each pass misses the cache). `imports_without_gc()` pauses it around a command's imports;
`freeze_imported()` then moves everything made so far into the permanent generation
(`gc.freeze`), so the passes that run while the command works skip it; called before the
collector resumes, as the first pass would otherwise walk all of it once (0.017 s).

`irtool compile` keeps the collector paused for the whole command (`gc_paused()`): most of
its modules (targets, passes, OR-Tools) load lazily while it works, and the cyclic garbage it
makes is bounded by the IR's size, not the weights' (stories260K: about 5,900 objects freed
when collected at the end; random 15M: 11,600, peak memory 249 MB either way).

`numpy_loaded_single_threaded()`: OpenBLAS starts one worker thread per core when numpy loads
and spins them up, which cost `irtool compile` of stories260K 0.10-0.12 s of CPU on 2 cores
(0.65 -> 0.53 s) although every command pins BLAS to one thread for its tiny matmuls
(`irtool.blas`). The entry points therefore load numpy with `OPENBLAS_NUM_THREADS=1`, unless
the user set it; the variable is removed again afterwards, so the programs irtool runs (and a
process that imports irtool) keep their own settings (as does a user's OPENBLAS_NUM_THREADS,
GOTO_NUM_THREADS or OMP_NUM_THREADS), and `blas_threads(n)` can still raise
the count later.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import cache


def imports_without_gc() -> AbstractContextManager[None]:
    """The block's imports run with the cyclic collector off (`gc_paused`)."""
    return gc_paused()


@contextmanager
def gc_paused() -> Iterator[None]:
    """The block runs with the cyclic collector off (restored as it was afterwards)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def freeze_imported() -> None:
    """What exists now (modules, definitions) is never collected again: later collections
    only walk what the command itself makes. For the entry points of short-lived processes."""
    gc.freeze()


@cache
def no_collection_at_exit() -> None:
    """At exit, everything left is frozen before the interpreter shuts down: its shutdown
    collections then walk nothing (the memory goes back to the system with the process
    anyway), which saved `irtool compile` of stories260K 0.01-0.02 s of CPU. An `atexit`
    handler (registered once), so a process that calls an entry point's `main` and goes on
    (the tests) keeps its collector until it exits."""
    import atexit

    atexit.register(gc.freeze)


_BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")


@contextmanager
def numpy_loaded_single_threaded() -> Iterator[None]:
    """numpy imported in the block starts OpenBLAS with one thread (module docstring), unless
    numpy is loaded already or the user chose a thread count OpenBLAS reads."""
    if "numpy" in sys.modules or any(name in os.environ for name in _BLAS_THREAD_VARIABLES):
        yield
        return
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        import numpy  # noqa: F401  (OpenBLAS reads the variable as the library loads)

        yield
    finally:
        os.environ.pop("OPENBLAS_NUM_THREADS", None)
