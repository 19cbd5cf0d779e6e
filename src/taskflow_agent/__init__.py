"""taskflow-agent: the in-pod helper that runs one step of a Task inside its container.

stdlib only and no import of the operator (``taskflow``): it is linked into a static
executable (``taskflow_agent.build``) that runs in any step image. The pod layout and the
command line it serves are described in ``docs/agent.md``.
"""
