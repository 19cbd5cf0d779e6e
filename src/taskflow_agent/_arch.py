"""Which command of a multi-platform image this machine runs (``--arch``).

The operator renders the pod before it is scheduled, so when an image's platforms run
different commands it passes all of them; the agent keeps its own machine's. No ``re`` and
no ``platform`` module (start-up time): ``os.uname`` needs no ``/proc``.
"""

from __future__ import annotations

import os

#: ``uname -m`` -> the OCI/Go platform (architecture[/variant]), as containerd maps them
MACHINES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv8l": "arm/v8",
    "armv7l": "arm/v7",
    "armv6l": "arm/v6",
    "armv5tel": "arm/v5",
    "i386": "386",
    "i486": "386",
    "i586": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "mips64": "mips64",
    "loongarch64": "loong64",
}


def machine_platform(machine: str | None = None) -> str:
    """This machine's platform (``amd64``, ``arm/v7``); the raw name when unknown."""
    name = os.uname().machine if machine is None else machine
    return MACHINES.get(name, name)


def _matches(entry: str, mine: str) -> bool:
    arch, _, variant = entry.partition("/")
    my_arch, _, my_variant = mine.partition("/")
    # an entry without variant fits any variant; arm64's only variant is v8
    return arch == my_arch and (not variant or not my_variant or variant == my_variant)


def select(arches: list[tuple[str, int]], argv: list[bytes], mine: str) -> list[bytes] | None:
    """The slice of ``argv`` (the platforms' argvs one after another, ``arches`` saying
    whose and how long) for platform ``mine``; the first match wins; None when none
    matches."""
    start = 0
    for entry, count in arches:
        if _matches(entry, mine) or (entry == "arm64/v8" and mine == "arm64"):
            return argv[start : start + count]
        start += count
    return None
