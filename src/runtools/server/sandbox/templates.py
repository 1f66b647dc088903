"""Templates: the root filesystems sandboxes start from, on this node.

A template is either the host's own userland (the default, named for what
it is: ``host-debian`` on a Debian host, from its ``os-release``) or a root
filesystem an operator imported from a tarball (``docker export``,
``debootstrap``), kept under ``<templates dir>/<name>/rootfs`` with its
record in ``<name>/template.json``. ``base-ubuntu``, the documented name,
resolves to the default unless a template of that name was imported.

Importing extracts the tarball on the host, as root, into a fresh
``.import-*`` directory and renames it into place only once every member
was accepted, so a refused or broken archive leaves nothing. It refuses,
rather than rewrites: absolute member names, ``..`` components, members
reached through a symlink of the archive, relative symlinks that climb out
of the root, hard links to anything but a regular file extracted before,
and device nodes or FIFOs outside ``dev/`` (those inside are skipped: a
sandbox gets its own ``/dev``). Absolute symlinks are kept: inside a
sandbox they resolve within its root. Setuid and setgid bits are dropped
(commands run with ``no_new_privs`` anyway); owners are kept by number.
A template must hold the programs a sandbox is entered with
(``REQUIRED_PROGRAMS``).

Removing renames the template out of the way first, so no new sandbox can
start from it, then asks ``in_use`` (the caller knows the sandboxes); one
still in use is put back and refused.

Not here: how a sandbox's ``/`` is made of a template (``layout``), which
sandboxes use one (``services/sandboxes``).
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import secrets
import shutil
import stat
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from runtools.server.domain.errors import Conflict, InvalidRequest, NotFound

__all__ = [
    "DOCUMENTED_DEFAULT",
    "REQUIRED_PROGRAMS",
    "TEMPLATE_NAME",
    "Template",
    "TemplateStore",
    "host_template_name",
]

TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
#: The name the API documents for the default template.
DOCUMENTED_DEFAULT = "base-ubuntu"
#: What a sandbox is entered and kept alive with (``enter``, ``layout``).
REQUIRED_PROGRAMS = ("/bin/sh", "/usr/bin/setpriv", "/usr/bin/env", "/usr/bin/sleep")
RECORD = "template.json"
ROOTFS = "rootfs"
STAGING_PREFIX = ".import-"
RETIRED_PREFIX = ".removed-"
MAX_SYMLINK_HOPS = 40
#: Leftovers of an import or removal older than this are swept (``sweep``).
LEFTOVER_AGE_S = 6 * 3600.0

Kind = Literal["host", "imported"]


@dataclass(frozen=True)
class Template:
    """One template: ``root`` is ``None`` for the host's userland."""

    name: str
    kind: Kind
    description: str
    root: Path | None = None
    size: int = 0
    files: int = 0
    imported_at: datetime | None = None
    is_default: bool = False
    aliases: tuple[str, ...] = ()


def _os_release_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            fields[key.strip()] = value.strip().strip("\"'")
    return fields


def _host_os_release() -> dict[str, str]:
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        with contextlib.suppress(OSError):
            return _os_release_fields(Path(path).read_text(errors="replace"))
    return {}


def host_template_name(os_release: dict[str, str] | None = None) -> str:
    """``host-<ID>`` of the host's os-release (``host-debian``), or ``host``."""
    fields = _host_os_release() if os_release is None else os_release
    ident = re.sub(r"[^a-z0-9._-]", "", fields.get("ID", "").lower())[:40]
    return f"host-{ident}" if ident else "host"


class TemplateStore:
    """The templates of this node: the host's and those imported under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self._dir = Path(os.path.abspath(directory))
        fields = _host_os_release()
        self._host = Template(
            name=host_template_name(fields),
            kind="host",
            description=(fields.get("PRETTY_NAME") or "this host's userland")
            + " (the host's /usr)",
            is_default=True,
        )

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def default_name(self) -> str:
        return self._host.name

    # -- reading ---------------------------------------------------------------

    def _imported(self) -> dict[str, Template]:
        found: dict[str, Template] = {}
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for entry in sorted(self._dir.iterdir()):
                if TEMPLATE_NAME.fullmatch(entry.name) and entry.name != self._host.name:
                    template = _read_record(entry)
                    if template is not None:
                        found[template.name] = template
        return found

    def list(self) -> list[Template]:
        """The default first, then the imported ones by name."""
        imported = self._imported()
        aliases = () if DOCUMENTED_DEFAULT in imported else (DOCUMENTED_DEFAULT,)
        host = Template(**{**self._host.__dict__, "aliases": aliases})
        return [host, *imported.values()]

    def resolve(self, name: str) -> Template:
        """The template ``name`` stands for; ``InvalidRequest`` naming those there are."""
        templates = self.list()
        for template in templates:
            if name == template.name or name in template.aliases:
                return template
        names = ", ".join(n for t in templates for n in (t.name, *t.aliases))
        raise InvalidRequest(f"unknown sandbox template {name!r}; available: {names}")

    # -- importing -------------------------------------------------------------

    def check_name(self, name: str) -> None:
        if not TEMPLATE_NAME.fullmatch(name):
            raise InvalidRequest(
                f"invalid template name {name!r}: 1-63 of a-z, 0-9, '.', '_', '-', "
                "starting with a letter or digit"
            )
        if name == self._host.name:
            raise Conflict(f"{name!r} is the host's template; choose another name")

    def exists(self, name: str) -> bool:
        return (self._dir / name / RECORD).is_file()

    def import_tar(
        self,
        name: str,
        source: Path,
        *,
        replace: bool = False,
        in_use: Callable[[str], int] | None = None,
    ) -> Template:
        """Extract ``source`` (tar, tar.gz, tar.xz, tar.bz2) as template ``name``."""
        self.check_name(name)
        if self.exists(name) and not replace:
            raise Conflict(f"template {name!r} already exists; pass --replace to replace it")
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        staging = self._dir / f"{STAGING_PREFIX}{secrets.token_hex(6)}"
        staging.mkdir(mode=0o700)
        try:
            rootfs = staging / ROOTFS
            rootfs.mkdir(mode=0o755)
            files, size = _extract(source, rootfs)
            _check_programs(rootfs)
            template = Template(
                name=name,
                kind="imported",
                description=_description_of(rootfs, source),
                root=self._dir / name / ROOTFS,
                size=size,
                files=files,
                imported_at=datetime.now(UTC),
            )
            _write_record(staging, template, source)
            target = self._dir / name
            retired = self._retire(name) if replace else None
            if retired is not None and in_use is not None and (count := in_use(name)):
                os.rename(retired, target)
                raise Conflict(f"template {name!r} is in use by {count} sandbox(es); not replaced")
            try:
                os.rename(staging, target)
            except OSError as exc:
                if retired is not None:
                    os.rename(retired, target)
                raise Conflict(f"template {name!r} already exists") from exc
            if retired is not None:
                shutil.rmtree(retired, ignore_errors=True)
            return template
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    # -- removing --------------------------------------------------------------

    def remove(self, name: str, *, in_use: Callable[[str], int]) -> None:
        """Remove an imported template no sandbox uses."""
        if name == self._host.name or (name == DOCUMENTED_DEFAULT and not self.exists(name)):
            raise Conflict(f"{name!r} is the host's template; it cannot be removed")
        if not TEMPLATE_NAME.fullmatch(name) or not self.exists(name):
            raise NotFound(f"No template {name!r}")
        retired = self._retire(name)
        if retired is None:
            raise NotFound(f"No template {name!r}")
        # Out of the way first: a sandbox that started before is counted, none can start after.
        count = in_use(name)
        if count:
            os.rename(retired, self._dir / name)
            raise Conflict(
                f"template {name!r} is in use by {count} sandbox(es); destroy them first"
            )
        shutil.rmtree(retired, ignore_errors=True)

    def _retire(self, name: str) -> Path | None:
        retired = self._dir / f"{RETIRED_PREFIX}{secrets.token_hex(6)}"
        try:
            os.rename(self._dir / name, retired)
        except FileNotFoundError:
            return None
        return retired

    def sweep(self, *, older_than_s: float = LEFTOVER_AGE_S) -> None:
        """Remove what an interrupted import or removal left behind.

        Only what is older than ``older_than_s``: another process may be
        importing right now.
        """
        now = time.time()
        with contextlib.suppress(FileNotFoundError):
            for entry in self._dir.iterdir():
                if not entry.name.startswith((STAGING_PREFIX, RETIRED_PREFIX)):
                    continue
                with contextlib.suppress(OSError):
                    if now - entry.lstat().st_mtime > older_than_s:
                        shutil.rmtree(entry, ignore_errors=True)


# -- the record -----------------------------------------------------------------


def _write_record(staging: Path, template: Template, source: Path) -> None:
    record = {
        "name": template.name,
        "description": template.description,
        "size": template.size,
        "files": template.files,
        "importedAt": template.imported_at.isoformat() if template.imported_at else None,
        "source": source.name,
    }
    path = staging / RECORD
    path.write_text(json.dumps(record, indent=2) + "\n")
    os.chmod(path, 0o600)


def _read_record(entry: Path) -> Template | None:
    try:
        data = json.loads((entry / RECORD).read_text())
        return Template(
            name=entry.name,
            kind="imported",
            description=str(data.get("description") or entry.name),
            root=entry / ROOTFS,
            size=int(data.get("size") or 0),
            files=int(data.get("files") or 0),
            imported_at=(
                datetime.fromisoformat(data["importedAt"]) if data.get("importedAt") else None
            ),
        )
    except (OSError, ValueError, TypeError, KeyError):
        return None


# -- extraction -----------------------------------------------------------------


def _normal_name(name: str) -> str | None:
    """The member's path relative to the root (``None`` for the root itself)."""
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise InvalidRequest(f"archive member has an absolute name: {name}")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidRequest(f"archive member leaves the root: {name}")
    return "/".join(parts) or None


def _no_symlink_on_the_way(rootfs: str, relative: str, name: str) -> None:
    """Nothing already extracted on the way to ``relative`` may be a symlink."""
    path = rootfs
    for part in relative.split("/")[:-1]:
        path = os.path.join(path, part)
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISLNK(mode):
            raise InvalidRequest(f"archive member is reached through a symlink: {name}")
        if not stat.S_ISDIR(mode):
            raise InvalidRequest(f"archive member is below a non-directory: {name}")


def _clear_the_place(path: str, member: tarfile.TarInfo) -> None:
    """A later member replaces an earlier one, never writing through it (a symlink)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        if not member.isdir():
            raise InvalidRequest(f"archive member would replace a directory: {member.name}")
        return
    os.unlink(path)


def _extract(source: Path, rootfs: Path) -> tuple[int, int]:
    """Extract ``source`` into ``rootfs``; returns regular files and their bytes."""
    root = str(rootfs)
    counted = {"files": 0, "size": 0}

    def accept(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        named = _normal_name(member.name)
        if named is None:
            return None  # the root directory itself: ours is already there
        relative: str = named
        _no_symlink_on_the_way(root, relative, member.name)
        _clear_the_place(os.path.join(root, relative), member)
        if member.isdev():
            if relative == "dev" or relative.startswith("dev/"):
                return None  # a sandbox gets its own /dev
            raise InvalidRequest(f"archive member is a device or FIFO outside /dev: {member.name}")
        if member.issym():
            pointed = member.linkname
            if not pointed.startswith("/"):
                joined = posixpath.normpath(posixpath.join(posixpath.dirname(relative), pointed))
                if joined == ".." or joined.startswith("../"):
                    raise InvalidRequest(
                        f"archive symlink points out of the root: {member.name} -> {pointed}"
                    )
        elif member.islnk():
            target = _normal_name(member.linkname)
            if target is None:
                raise InvalidRequest(f"archive hard link to the root: {member.name}")
            _no_symlink_on_the_way(root, target, member.name)
            try:
                mode = os.lstat(os.path.join(root, target)).st_mode
            except FileNotFoundError:
                mode = 0
            if not stat.S_ISREG(mode):
                raise InvalidRequest(
                    f"archive hard link to something not a file extracted before: "
                    f"{member.name} -> {member.linkname}"
                )
            member = member.replace(linkname=target, deep=False)
        elif member.isfile():
            counted["files"] += 1
            counted["size"] += member.size
        elif not member.isdir():
            raise InvalidRequest(f"archive member of an unsupported kind: {member.name}")
        if member.issym():
            return member.replace(name=relative, mode=None, deep=False)  # type: ignore[arg-type]
        return member.replace(name=relative, mode=member.mode & 0o1777, deep=False)

    try:
        with tarfile.open(source, "r:*") as archive:
            archive.extraction_filter = accept
            # Every member passes ``accept`` first (it refuses what is unsafe).
            archive.extractall(rootfs, numeric_owner=True)  # noqa: S202
    except InvalidRequest:
        raise
    except FileNotFoundError as exc:
        if not source.exists():
            raise NotFound(f"No such file: {source}") from exc
        raise InvalidRequest(f"cannot extract {source.name}: {exc}") from exc
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InvalidRequest(f"cannot extract {source.name}: {exc}") from exc
    return counted["files"], counted["size"]


def resolve_inside(rootfs: Path, path: str) -> Path | None:
    """``path`` as a sandbox would see it on ``rootfs``: symlinks resolved within it."""
    parts = [p for p in path.split("/") if p]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = rootfs.joinpath(*resolved, part)
        try:
            mode = os.lstat(candidate).st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                return None
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    return rootfs.joinpath(*resolved)


def _check_programs(rootfs: Path) -> None:
    missing = []
    for program in REQUIRED_PROGRAMS:
        found = resolve_inside(rootfs, program)
        if found is None or not found.is_file() or not os.stat(found).st_mode & 0o111:
            missing.append(program)
    if missing:
        raise InvalidRequest(
            f"the root filesystem lacks what a sandbox is entered with: {', '.join(missing)} "
            "(a POSIX shell, util-linux setpriv, coreutils env and sleep)"
        )


def _description_of(rootfs: Path, source: Path) -> str:
    found = resolve_inside(rootfs, "/etc/os-release") or resolve_inside(
        rootfs, "/usr/lib/os-release"
    )
    if found is not None:
        with contextlib.suppress(OSError):
            fields = _os_release_fields(found.read_text(errors="replace"))
            if fields.get("PRETTY_NAME"):
                return fields["PRETTY_NAME"][:200]
    return f"imported from {source.name}"[:200]
