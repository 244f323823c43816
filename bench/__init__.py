"""Benchmarks (not tests): each prints its figures, the targets it is held to, and a final
``name: key=value ...`` line. Run from the repository root: ``python -m bench.enqueue``,
``python -m bench.dispatch``, ``python -m bench.auth``. What they share is in ``bench.common``."""
