"""Build the static ``taskflow-agent`` executable.

    python3 -m taskflow_agent.build OUT [--cc CC]

Run it with the Python whose ``libpython3.X.a`` is linked (Debian: ``python3`` with
``libpython3.11-dev``, ``gcc``, ``libc6-dev``): its stdlib is compiled into the appended zip,
so the bytecode and the interpreter always match. The result is one file:

    [ELF: main.c + native.c + libpython3.11.a, static, stripped] [zip: .pyc, stored]

- ``main.c`` starts CPython isolated, with sys.path = [the executable] (zipimport reads the
  zip that ends the file) and runs ``taskflow_agent.cli.main``.
- The zip holds ``taskflow_agent`` (without this build package) and exactly the stdlib
  modules it imports, found by importing it in a clean ``-I -S`` interpreter, as bytecode
  (``-OO``: no docstrings) without sources. Stored, not deflated: the binary has no zlib.
- Linking needs no library but libc and libm (static): the module table in ``main.c``
  leaves out every builtin that needs zlib, expat or others.

This module is stdlib only and runs in the Containerfile's ``agent`` stage and in the tests.
"""

from __future__ import annotations

import hashlib
import io
import marshal
import os
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from importlib.util import MAGIC_NUMBER
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE_DIR = HERE.parent  # src/taskflow_agent
SOURCES = (HERE / "main.c", HERE / "native.c")
# Loaded during start-up by name, not by an import statement the trace would see.
STARTUP_MODULES = ("encodings", "encodings.aliases", "encodings.utf_8", "encodings.ascii")
LIBS = ("-lm", "-lpthread", "-ldl", "-lutil")

# Prints "name<TAB>file<TAB>is-package" per module; imports nothing of its own.
_TRACE = """
import sys
sys.path.insert(0, {src!r})
import taskflow_agent.cli, taskflow_agent._step, taskflow_agent._install, taskflow_agent._wait
for name in {startup!r}:
    __import__(name)
for name, mod in sorted(sys.modules.items()):
    f = getattr(mod, "__file__", None)
    if f and f.endswith(".py") and (f.startswith({stdlib!r}) or name.startswith("taskflow_agent")):
        print(name, f, int(hasattr(mod, "__path__")), sep="\t")
"""


class BuildError(RuntimeError):
    pass


def source_digest() -> str:
    """A hash of everything that goes into the executable (for caches)."""
    h = hashlib.sha256(sys.version.encode())
    files = sorted(p for p in PACKAGE_DIR.rglob("*") if p.suffix in (".py", ".c") and p.is_file())
    for p in files:
        h.update(str(p.relative_to(PACKAGE_DIR)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def _modules() -> dict[str, tuple[str, bool]]:
    stdlib = sysconfig.get_paths()["stdlib"]
    code = _TRACE.format(src=str(PACKAGE_DIR.parent), stdlib=stdlib, startup=STARTUP_MODULES)
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise BuildError(f"tracing the agent's imports failed:\n{proc.stderr}")
    found = (line.split("\t") for line in proc.stdout.splitlines())
    return {
        name: (f, pkg == "1")
        for name, f, pkg in found
        # os.path is posixpath under another name, found through os, not the path
        if not name.startswith("taskflow_agent.build") and name != "os.path"
    }


def _pyc(source: str, archive_name: str) -> bytes:
    code = compile(Path(source).read_bytes(), archive_name, "exec", optimize=2, dont_inherit=True)
    # flags 0 (timestamp pyc) with mtime 0 and size 0: zipimport has no source to compare.
    return MAGIC_NUMBER + bytes(12) + marshal.dumps(code)


def make_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, (source, is_package) in sorted(_modules().items()):
            stem = name.replace(".", "/") + ("/__init__" if is_package else "")
            info = zipfile.ZipInfo(stem + ".pyc", date_time=(1980, 1, 1, 0, 0, 0))
            z.writestr(info, _pyc(source, stem + ".py"))
    return buf.getvalue()


def link(out: Path, cc: str) -> None:
    include = sysconfig.get_paths()["include"]
    libdir = sysconfig.get_config_var("LIBPL")
    library = sysconfig.get_config_var("LIBRARY")  # libpython3.X.a
    static = Path(libdir) / library
    if not static.is_file():
        raise BuildError(f"{static} is missing (Debian: apt-get install libpython3-dev)")
    cmd = [cc, "-O2", "-static", "-s", "-I", include, *map(str, SOURCES), str(static), *LIBS]
    proc = subprocess.run([*cmd, "-o", str(out)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed:\n{proc.stderr}")


def build(out: Path, *, cc: str = "cc") -> Path:
    """Write the executable to ``out`` (atomically, mode 0755) and return it."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        binary = Path(tmp) / "agent"
        link(binary, cc)
        with binary.open("ab") as f:
            f.write(make_zip())
        os.chmod(binary, 0o755)
        os.replace(binary, out)
    return out


def main(argv: list[str]) -> int:
    if len(argv) == 1 and not argv[0].startswith("-"):
        out, cc = argv[0], "cc"
    elif len(argv) == 3 and argv[1] == "--cc":
        out, cc = argv[0], argv[2]
    else:
        print("usage: python3 -m taskflow_agent.build OUT [--cc CC]", file=sys.stderr)
        return 2
    try:
        path = build(Path(out), cc=cc)
    except BuildError as e:
        print(f"taskflow_agent.build: {e}", file=sys.stderr)
        return 1
    print(f"{path} {path.stat().st_size} bytes")
    return 0
