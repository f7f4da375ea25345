"""One-off measurements on the shared harness (:mod:`benchmarks.studies.harness`); each runs as
``python -m benchmarks.studies.<name>`` and keeps its figures in ``benchmarks/studies/results/``."""
