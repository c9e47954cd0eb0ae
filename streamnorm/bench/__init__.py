"""Peer comparison: ``python -m streamnorm.bench [--quick] [--targets ...] [--gpu]``.

Times streamnorm against the libraries people would otherwise use, on the same data in the
same run, after a header naming the machine (CPU model, vector extensions, caches, cores and
the measured memory-read bandwidth). One table per target: seconds (best of ``--repeat``
interleaved rounds), GB/s of input read, and each peer's time divided by streamnorm's (> 1
means streamnorm is faster); then the goals of issue 14, each HIT or MISS with its figure.
Peers are optional (``pip install streamnorm[peers]`` plus CPU torch); a missing one is
skipped with a message. Timings on a shared machine are noisy: compare only rows of one run.

Targets (``--targets``): ``stats`` and ``layer`` (:mod:`.targets`), ``file`` (:mod:`.files`:
the command line against polars' one expression and its streaming two-pass), ``small``,
``wide`` and ``grouped`` (:mod:`.extra`). ``--gpu`` (:mod:`.gpu`) runs the CUDA tests on a
GPU and times the CUDA kernels.
"""

from .cli import FULL, QUICK, TARGETS, main

__all__ = ["FULL", "QUICK", "TARGETS", "main"]
