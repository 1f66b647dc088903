"""A minimal root filesystem built from the host's own programs, as a tarball.

What a sandbox needs to be entered (``sh``, ``setpriv``, ``env``, ``sleep``),
a few tools for tests to look around with, the shared libraries ``ldd``
names for them, and files that tell it apart from the host: its own
``/etc/os-release``, a marker, and a world-writable ``/opt/shared`` (so a
sandbox user may write to the template's own files: the overlay must keep
such writes to that sandbox).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

__all__ = ["MARKER", "OS_RELEASE", "PROGRAMS", "build_rootfs", "rootfs_tar"]

PROGRAMS = (
    "/bin/sh",
    "/usr/bin/setpriv",
    "/usr/bin/env",
    "/usr/bin/sleep",
    "/usr/bin/cat",
    "/usr/bin/ls",
    "/usr/bin/id",
    "/usr/bin/touch",
    "/usr/bin/rm",
    "/usr/bin/mkdir",
    "/usr/bin/stat",
    "/usr/bin/true",
    "/usr/bin/timeout",
    "/usr/bin/grep",
    "/usr/bin/cut",
    "/usr/bin/tr",
    "/usr/bin/wc",
    "/usr/bin/head",
    "/usr/bin/tty",
)
# Left out of the copied standard library: not needed to run, and large.
PYTHON_SKIPPED = ("test", "__pycache__", "idlelib", "tkinter", "ensurepip", "lib2to3", "turtledemo")
OS_RELEASE = 'PRETTY_NAME="Tiny Test Linux 1.0"\nNAME="Tiny"\nID=tiny\nVERSION_ID="1.0"\n'
MARKER = "made for a template test\n"
LIBRARY = re.compile(r"(/\S+\.so[^\s]*)")


def _libraries(program: str) -> set[str]:
    out = subprocess.run(["ldd", program], capture_output=True, text=True, check=False).stdout
    return set(LIBRARY.findall(out))


def _copy(host_path: str, root: Path) -> None:
    """The file at the path it is named by (the dynamic loader's) and at its real one."""
    real = os.path.realpath(host_path)
    for path in {host_path, real}:
        # The layout is merged /usr: everything below usr/.
        relative = path.lstrip("/")
        if not relative.startswith("usr/"):
            relative = "usr/" + relative
        target = root / relative
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(real, target)


def build_rootfs(root: Path, *, python: bool = False) -> Path:
    """Populate ``root`` (merged /usr, like Debian) and return it.

    ``python``: the host's Python 3, its standard library and, if the host
    has Debian's, pip (``/usr/lib/python3/dist-packages/pip``).
    """
    for name in ("bin", "sbin", "lib", "lib64"):
        os.symlink(f"usr/{name}", root / name)
    (root / "usr" / "sbin").mkdir(parents=True)
    (root / "usr" / "bin").mkdir()
    programs = list(PROGRAMS)
    if python:
        programs.append(os.path.realpath("/usr/bin/python3"))
        os.symlink(os.path.basename(programs[-1]), root / "usr" / "bin" / "python3")
    needed: set[str] = set()
    for program in programs:
        _copy(program, root)
        needed |= _libraries(program)
    for library in needed:
        _copy(library, root)
    if python:
        version = os.path.basename(os.path.realpath("/usr/bin/python3"))
        shutil.copytree(
            f"/usr/lib/{version}",
            root / "usr" / "lib" / version,
            symlinks=True,
            ignore=shutil.ignore_patterns(*PYTHON_SKIPPED),
        )
        pip = Path("/usr/lib/python3/dist-packages/pip")
        if pip.is_dir():
            shutil.copytree(
                pip,
                root / "usr" / "lib" / "python3" / "dist-packages" / "pip",
                symlinks=True,
                ignore=shutil.ignore_patterns("__pycache__"),
            )
        for module in (root / "usr" / "lib" / version / "lib-dynload").glob("*.so"):
            for library in _libraries(str(module)):
                _copy(library, root)
    # sh as /usr/bin/sh, reached as /bin/sh through the bin symlink.
    sh = root / "usr" / "bin" / "sh"
    if not sh.exists():
        os.symlink(os.path.basename(os.path.realpath("/bin/sh")), sh)
    etc = root / "etc"
    etc.mkdir()
    (root / "usr" / "lib" / "os-release").write_text(OS_RELEASE)
    os.symlink("../usr/lib/os-release", etc / "os-release")
    (root / "marker").write_text(MARKER)
    shared = root / "opt" / "shared"
    shared.mkdir(parents=True)
    os.chmod(shared, 0o777)
    (shared / "note").write_text("original\n")
    os.chmod(shared / "note", 0o666)
    for name in ("tmp", "home", "workspace", "proc", "dev"):
        (root / name).mkdir(exist_ok=True)
    return root


def rootfs_tar(root: Path, tar_path: Path, *, compress: bool = True) -> Path:
    """Tar ``root`` as ``docker export`` does: relative names, owned by root."""

    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(tar_path, "w:gz" if compress else "w") as archive:
        for entry in sorted(root.iterdir()):
            archive.add(entry, arcname=entry.name, filter=as_root)
    return tar_path


def hostile_tar(
    tar_path: Path, members: list[tarfile.TarInfo], *, after: Path | None = None
) -> Path:
    """A tar of hand-made members (a regular one holds ``x``), after those of tarball ``after``."""
    with tarfile.open(tar_path, "w") as archive:
        if after is not None:
            with tarfile.open(after) as base:
                for info in base.getmembers():
                    archive.addfile(info, base.extractfile(info) if info.isfile() else None)
        for info in members:
            if info.isreg():
                info.size = 1
                archive.addfile(info, io.BytesIO(b"x"))
            else:
                archive.addfile(info)
    return tar_path
