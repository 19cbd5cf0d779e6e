"""One-off measurements outside the runner's table (``python -m benchmarks.run``), each run
as ``python -m benchmarks.tools.NAME`` (``--help`` for its options):

* ``agent``: every measurement of the ``agent`` part, printed (no cluster);
* ``handoff``: every variant's runs of the ``handoff`` part (the full tier, its lock);
* ``create``: the ``create`` part's rows for other operator arguments (a cluster);
* ``reconcile``: ``plan()`` and watch-decoding throughput, and end-to-end reconciles with 1
  worker vs N (a cluster optional);
* ``cache_memory``: the engine cache's memory for many finished Tasks with big scripts;
* ``scale_profile``: the operator's heap per Task by source line (a cluster);
* ``profile_top``: the top functions of a ``run.py --profile`` py-spy file.
"""
