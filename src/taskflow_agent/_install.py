"""``taskflow-agent install DIR``: put this executable at ``DIR/taskflow-agent`` (0555).

Which file is "this executable": ``sys.executable``. In the static build the C ``main``
sets it from argv[0] as the kernel and the kubelet pass it (a path with '/' is used as is,
a bare name is looked up in PATH, as a shell would have), so no /proc is needed. Run as
``python -m taskflow_agent``, ``sys.executable`` is the Python interpreter, which is not the
agent: ``--source`` must then name the file to install.
"""

from __future__ import annotations

import os

NAME = "taskflow-agent"
MODE = 0o555


def own_executable() -> str:
    import sys

    # The C module exists only in the static build (build/native.c).
    if "_taskflow_native" not in sys.builtin_module_names or not sys.executable:
        raise OSError(
            "install copies the static taskflow-agent executable; this is "
            f"{sys.executable or 'an embedded interpreter'} (pass --source FILE)"
        )
    return sys.executable


def install(directory: str, source: str | None = None) -> str:
    """Copy ``source`` (default: this executable) to ``directory/taskflow-agent``
    atomically (a temp file in ``directory``, then rename); return the target path."""
    src = source or own_executable()
    target = os.path.join(directory, NAME)
    tmp = os.path.join(directory, f".{NAME}.tmp.{os.getpid()}")
    with open(src, "rb") as fin:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            while chunk := fin.read(1 << 20):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            os.fchmod(fd, MODE)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
    os.rename(tmp, target)
    return target
