"""taskflow benchmarks; `nox -s bench` runs :mod:`benchmarks.run`."""
