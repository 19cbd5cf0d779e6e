"""The I/O shell: client config, list+watch streams, cache, work queue, workers, writer,
leader election, and :mod:`taskflow.engine.operator` wiring them in one anyio task group."""
