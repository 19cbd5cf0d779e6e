"""Build the static ``taskflow-agent`` executable.

    python3 -m taskflow_agent.build OUT [--arch amd64|arm64] [--cc CC]

Run it with the Python whose ``libpython3.X.a`` is linked (Debian: ``python3`` with
``libpython3.11-dev``, ``gcc``, ``libc6-dev``): its stdlib is compiled into the appended zip,
so the bytecode and the interpreter always match (the build checks that the library holds
this interpreter's exact version). The result is one file:

    [ELF: main.c + native.c + libpython3.11.a, static, stripped] [zip: .pyc, stored]

- ``main.c`` starts CPython isolated, with sys.path = [the executable] (zipimport reads the
  zip that ends the file) and runs ``taskflow_agent.cli.main``.
- The zip holds ``taskflow_agent`` (without this build package) and exactly the stdlib
  modules it imports, found by importing it in a clean ``-I -S`` interpreter, as bytecode
  (``-OO``: no docstrings) without sources. Stored, not deflated: the binary has no zlib.
- Linking needs no library but libc and libm (static): the module table in ``main.c``
  leaves out every builtin that needs zlib, expat or others.

``--arch`` other than this machine's cross-compiles: the compiler is Debian's
``<triplet>-gcc`` (``gcc-aarch64-linux-gnu``) and the library that architecture's
``libpython3.X-dev`` from a multiarch apt (``dpkg --add-architecture arm64``;
``libpython3.11-dev:arm64``), whose version dpkg keeps equal to this machine's. Bytecode and
the stdlib sources do not depend on the architecture, so the zip is the same for both.

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
#: OCI architecture -> Debian's multiarch triplet (compiler prefix, library directory)
TRIPLETS = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}

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


def native_arch() -> str:
    """This interpreter's architecture (a key of :data:`TRIPLETS`)."""
    triplet = sysconfig.get_config_var("MULTIARCH")
    for arch, known in TRIPLETS.items():
        if known == triplet:
            return arch
    raise BuildError(f"unknown build machine {triplet!r}; known: {', '.join(TRIPLETS.values())}")


def static_library(arch: str) -> Path:
    """``libpython3.X.a`` for ``arch``: this interpreter's own, or the same version's from
    that architecture's multiarch ``libpython3.X-dev`` (Debian's ``config-3.X-<triplet>``
    next to this one's)."""
    libpl = Path(sysconfig.get_config_var("LIBPL"))
    library = str(sysconfig.get_config_var("LIBRARY"))  # libpython3.X.a
    static: Path
    if arch == native_arch():
        static = libpl / library
        hint = "apt-get install libpython3-dev"
    else:
        version = sysconfig.get_config_var("VERSION")  # 3.X
        static = libpl.parent / f"config-{version}-{TRIPLETS[arch]}" / library
        hint = (
            f"dpkg --add-architecture {arch}; apt-get update; "
            f"apt-get install libpython{version}-dev:{arch}"
        )
    if not static.is_file():
        raise BuildError(f"{static} is missing (Debian: {hint})")
    check_version(static)
    return static


def check_version(static: Path) -> None:
    """The library must be this interpreter's exact version: the zip's bytecode and stdlib
    come from here, the C half of the same modules from the library."""
    mine = ".".join(map(str, sys.version_info[:3]))
    if f"\0{mine}\0".encode() not in static.read_bytes():
        raise BuildError(
            f"{static} is not Python {mine} (the interpreter running this build); run the "
            "build with the Python whose library it links"
        )


def default_cc(arch: str) -> str:
    return "cc" if arch == native_arch() else f"{TRIPLETS[arch]}-gcc"


def link(out: Path, cc: str, arch: str) -> None:
    # Debian's pyconfig.h includes <TRIPLET/python3.X/pyconfig.h> by the compiler's own
    # target macros, and its cross gcc searches /usr/include/TRIPLET: one include for all.
    include = sysconfig.get_paths()["include"]
    static = static_library(arch)
    cmd = [cc, "-O2", "-static", "-s", "-I", include, *map(str, SOURCES), str(static), *LIBS]
    proc = subprocess.run([*cmd, "-o", str(out)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed:\n{proc.stderr}")


def build(out: Path, *, cc: str | None = None, arch: str | None = None) -> Path:
    """Write the executable for ``arch`` (default: this machine's) to ``out`` (atomically,
    mode 0755) and return it."""
    arch = arch or native_arch()
    if arch not in TRIPLETS:
        raise BuildError(f"unknown --arch {arch!r}; known: {', '.join(TRIPLETS)}")
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        binary = Path(tmp) / "agent"
        link(binary, cc or default_cc(arch), arch)
        with binary.open("ab") as f:
            f.write(make_zip())
        os.chmod(binary, 0o755)
        os.replace(binary, out)
    return out


USAGE = "usage: python3 -m taskflow_agent.build OUT [--arch amd64|arm64] [--cc CC]"


def _parse(argv: list[str]) -> tuple[str, dict[str, str]] | None:
    """OUT and its options; None on a usage error."""
    if not argv or argv[0].startswith("-") or len(argv) % 2 == 0:
        return None
    opts = dict(zip(argv[1::2], argv[2::2], strict=True))
    if set(opts) - {"--arch", "--cc"} or len(opts) != len(argv) // 2:
        return None
    return argv[0], opts


def main(argv: list[str]) -> int:
    parsed = _parse(argv)
    if parsed is None:
        print(USAGE, file=sys.stderr)
        return 2
    out, opts = parsed
    try:
        path = build(Path(out), cc=opts.get("--cc"), arch=opts.get("--arch"))
    except BuildError as e:
        print(f"taskflow_agent.build: {e}", file=sys.stderr)
        return 1
    print(f"{path} {path.stat().st_size} bytes")
    return 0
