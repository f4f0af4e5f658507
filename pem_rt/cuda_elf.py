"""Which GPUs a CUDA library carries code for, read from its ELF file (no CUDA, no GPU needed).

``cuda_architectures(path)`` lists the SM versions of the machine code ("sass") and PTX ("ptx") in the
library's ``.nv_fatbin`` section, what ``cuobjdump --list-elf/--list-ptx`` shows. The plugin builder
reports them and ``pem doctor`` matches them against the GPU.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from pem_rt.errors import PemError


def cuda_architectures(library: str | os.PathLike[str]) -> dict[str, list[int]]:
    """The SM versions a library carries machine code ("sass") and PTX ("ptx") for, read from the CUDA fat
    binaries in its ``.nv_fatbin`` ELF section (what ``cuobjdump --list-elf/--list-ptx`` shows)."""
    data = Path(library).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise PemError(f"{library} is not a 64-bit ELF library")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(index: int) -> tuple[int, int, int]:
        name, _, _, _, offset, size = struct.unpack_from("<IIQQQQ", data, shoff + index * shentsize)
        return name, offset, size

    _, names_at, _ = section(shstrndx)
    found: dict[str, set[int]] = {"sass": set(), "ptx": set()}
    for index in range(shnum):
        name_at, offset, size = section(index)
        if data[names_at + name_at : data.index(b"\0", names_at + name_at)] != b".nv_fatbin":
            continue
        at, end = offset, offset + size
        while at + 16 <= end:
            magic, _, header, body = struct.unpack_from("<IHHQ", data, at)
            if magic != 0xBA55ED50:  # fat binary container
                break
            entry, stop = at + header, at + header + body
            while entry < stop:
                kind, _, entry_header, entry_size = struct.unpack_from("<HHIQ", data, entry)
                arch = struct.unpack_from("<I", data, entry + 28)[0]
                found["ptx" if kind == 1 else "sass"].add(arch)
                entry += entry_header + entry_size
            at = stop
    return {kind: sorted(archs) for kind, archs in found.items()}


def runs_on(archs: dict[str, list[int]], sm: int) -> bool:
    """Whether code in ``archs`` runs on a GPU of compute capability ``sm`` (e.g. 87): machine code of
    the same major version and a minor at most the GPU's, or PTX of a version at most the GPU's."""
    if any(a // 10 == sm // 10 and a <= sm for a in archs.get("sass", [])):
        return True
    return any(p <= sm for p in archs.get("ptx", []))
