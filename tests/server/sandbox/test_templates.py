"""Templates: importing root filesystems safely, and sandboxes whose / is one.

Real tarballs extracted as root, real overlays in real namespaces. What an
attacker with a crafted tarball sees: a refusal, nothing left behind, the
host untouched; what a sandbox user sees: the template's files, their own
changes, never another sandbox's.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtools.server.domain.errors import Conflict, InvalidRequest, NotFound
from runtools.server.sandbox import LocalSandboxDriver, SandboxSpec
from runtools.server.sandbox.templates import TemplateStore, host_template_name
from support.rootfs import MARKER, build_rootfs, hostile_tar, rootfs_tar
from support.wheel import hello_wheel

from .conftest import SMALL, TINY, MakeSandbox, new_id

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def tiny_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("tiny")
    rootfs = base / "rootfs"
    rootfs.mkdir()
    return rootfs_tar(build_rootfs(rootfs), base / "tiny.tar.gz")


def digest_of(root: Path) -> dict[str, str]:
    """Every path below ``root`` with its content's hash (or link target), mode and owner."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            info = path.lstat()
            if path.is_symlink():
                what = "->" + os.readlink(path)
            elif path.is_file():
                what = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                what = "dir"
            found[str(path.relative_to(root))] = f"{what} {info.st_mode:o} {info.st_uid}"
    return found


def leftovers(store: TemplateStore) -> list[str]:
    if not store.directory.exists():
        return []
    return sorted(p.name for p in store.directory.iterdir())


# -- importing ------------------------------------------------------------------


def test_import_lists_it_beside_the_host_template(tmp_path: Path, tiny_tar: Path) -> None:
    store = TemplateStore(tmp_path / "templates")
    imported = store.import_tar("tiny-linux", tiny_tar)
    assert imported.description == "Tiny Test Linux 1.0"
    assert imported.files > 10
    assert imported.size > 100_000
    host, listed = store.list()
    assert host.name == host_template_name() == "host-debian"  # this host is Debian
    assert host.is_default
    assert host.aliases == ("base-ubuntu",)
    assert (listed.name, listed.kind, listed.is_default) == ("tiny-linux", "imported", False)
    assert (store.directory / "tiny-linux" / "rootfs" / "marker").read_text() == MARKER
    # Owners are the archive's (root), not the importer's whims; the record is private.
    assert (store.directory / "tiny-linux" / "rootfs" / "usr" / "bin").stat().st_uid == 0
    assert (store.directory / "tiny-linux" / "template.json").stat().st_mode & 0o077 == 0
    assert leftovers(store) == ["tiny-linux"]


def test_a_tarball_as_debootstrap_users_make_it_imports(tmp_path: Path) -> None:
    """``tar -C rootfs -c .``: ``./`` names, hard links, device nodes in /dev, setuid bits."""
    (tmp_path / "rootfs").mkdir()
    rootfs = build_rootfs(tmp_path / "rootfs")
    os.link(rootfs / "usr" / "bin" / "cat", rootfs / "usr" / "bin" / "cat-again")
    os.mknod(rootfs / "dev" / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(rootfs / "usr" / "bin" / "setpriv", 0o4755)
    tarball = tmp_path / "rootfs.tar.gz"
    subprocess.run(
        ["tar", "--numeric-owner", "-C", str(rootfs), "-czf", str(tarball), "."], check=True
    )
    store = TemplateStore(tmp_path / "templates")
    store.import_tar("debootstrapped", tarball)
    root = store.directory / "debootstrapped" / "rootfs"
    assert (root / "marker").read_text() == MARKER
    assert (root / "usr" / "bin" / "cat").stat().st_ino == (
        root / "usr" / "bin" / "cat-again"
    ).stat().st_ino
    assert not (root / "dev" / "null").exists()  # a sandbox gets its own /dev
    assert (root / "usr" / "bin" / "setpriv").stat().st_mode & 0o7777 == 0o755
    assert (root / "bin").is_symlink()


def test_existing_names_are_refused_unless_replaced(tmp_path: Path, tiny_tar: Path) -> None:
    store = TemplateStore(tmp_path / "templates")
    first = store.import_tar("tiny", tiny_tar)
    with pytest.raises(Conflict, match="already exists; pass --replace"):
        store.import_tar("tiny", tiny_tar)
    with pytest.raises(Conflict, match="host's template"):
        store.import_tar("host-debian", tiny_tar)
    with pytest.raises(InvalidRequest, match="invalid template name"):
        store.import_tar("../up", tiny_tar)
    replaced = store.import_tar("tiny", tiny_tar, replace=True)
    assert replaced.imported_at is not None
    assert first.imported_at is not None
    assert replaced.imported_at > first.imported_at
    with pytest.raises(Conflict, match="in use by 2"):
        store.import_tar("tiny", tiny_tar, replace=True, in_use=lambda name: 2)
    assert leftovers(store) == ["tiny"]
    assert store.resolve("tiny").imported_at == replaced.imported_at


def test_base_ubuntu_is_the_default_until_one_is_imported(tmp_path: Path, tiny_tar: Path) -> None:
    store = TemplateStore(tmp_path / "templates")
    assert store.resolve("base-ubuntu").name == "host-debian"
    assert store.resolve("host-debian").root is None
    with pytest.raises(InvalidRequest) as unknown:
        store.resolve("windows-11")
    assert unknown.value.message == (
        "unknown sandbox template 'windows-11'; available: host-debian, base-ubuntu"
    )
    store.import_tar("base-ubuntu", tiny_tar)
    assert store.resolve("base-ubuntu").kind == "imported"
    assert [(t.name, t.aliases) for t in store.list()] == [
        ("host-debian", ()),
        ("base-ubuntu", ()),
    ]


def test_removal_spares_templates_in_use_and_the_host(tmp_path: Path, tiny_tar: Path) -> None:
    store = TemplateStore(tmp_path / "templates")
    store.import_tar("tiny", tiny_tar)
    with pytest.raises(Conflict, match="in use by 1 sandbox"):
        store.remove("tiny", in_use=lambda name: 1)
    assert store.resolve("tiny").name == "tiny"
    with pytest.raises(Conflict, match="host's template"):
        store.remove("host-debian", in_use=lambda name: 0)
    with pytest.raises(Conflict, match="host's template"):
        store.remove("base-ubuntu", in_use=lambda name: 0)
    with pytest.raises(NotFound):
        store.remove("nothing", in_use=lambda name: 0)
    # While in_use is asked, the template is already out of reach of new sandboxes.
    seen: list[list[str]] = []

    def in_use(name: str) -> int:
        seen.append([t.name for t in store.list()])
        return 0

    store.remove("tiny", in_use=in_use)
    assert seen == [["host-debian"]]
    assert leftovers(store) == []


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info


HOSTILE = {
    "dot-dot": ([_member("../escaped")], "leaves the root"),
    "dot-dot-deep": ([_member("usr/../../escaped")], "leaves the root"),
    "absolute-name": ([_member("/tmp/escaped")], "absolute name"),
    "through-absolute-symlink": (
        [_member("out", tarfile.SYMTYPE, "/"), _member("out/HOSTDIR/escaped")],
        "through a symlink",
    ),
    "through-relative-symlink": (
        [
            _member("d", tarfile.DIRTYPE),
            _member("d/up", tarfile.SYMTYPE, "../.."),
        ],
        "points out of the root",
    ),
    "replacing-with-symlink": (
        [_member("etc", tarfile.SYMTYPE, "/HOSTDIR"), _member("etc", tarfile.DIRTYPE)],
        "would replace|through a symlink",
    ),
    "write-through-symlink": (
        [_member("victim", tarfile.SYMTYPE, "/HOSTDIR/victim"), _member("victim")],
        None,  # accepted: the later member replaces the link; the host file is untouched
    ),
    "hard-link-absolute": ([_member("h", tarfile.LNKTYPE, "/HOSTDIR/victim")], "absolute name"),
    "hard-link-through-symlink": (
        [_member("s", tarfile.SYMTYPE, "/HOSTDIR/victim"), _member("h", tarfile.LNKTYPE, "s")],
        "not a file extracted before",
    ),
    "device-outside-dev": ([_member("etc/disk", tarfile.BLKTYPE)], "device or FIFO"),
    "fifo": ([_member("run/pipe", tarfile.FIFOTYPE)], "device or FIFO"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused_and_leave_nothing(
    tmp_path: Path, tiny_tar: Path, case: str
) -> None:
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    victim = host_dir / "victim"
    victim.write_text("host's own\n")
    before = digest_of(host_dir)
    members, refusal = HOSTILE[case]
    for member in members:
        member.name = member.name.replace("/HOSTDIR", str(host_dir))
        member.linkname = member.linkname.replace("/HOSTDIR", str(host_dir))
    # The programs a sandbox needs come first, so only the hostile part can be refused.
    path = hostile_tar(tmp_path / "hostile.tar", members, after=tiny_tar)
    store = TemplateStore(tmp_path / "templates")
    if refusal is None:
        store.import_tar("evil", path)
        assert (store.directory / "evil" / "rootfs" / "victim").read_bytes() == b"x"
    else:
        with pytest.raises(InvalidRequest, match=refusal):
            store.import_tar("evil", path)
        assert leftovers(store) == []
    assert digest_of(host_dir) == before
    assert not (tmp_path / "escaped").exists()
    assert not Path("/tmp/escaped").exists()


def test_only_old_leftovers_are_swept(tmp_path: Path, tiny_tar: Path) -> None:
    store = TemplateStore(tmp_path / "templates")
    store.import_tar("tiny", tiny_tar)
    old, fresh = store.directory / ".import-old", store.directory / ".removed-fresh"
    old.mkdir()
    fresh.mkdir()
    os.utime(old, (0, 0))
    store.sweep()
    # Another import may be filling a fresh one right now.
    assert leftovers(store) == [".removed-fresh", "tiny"]
    store.sweep(older_than_s=-1)
    assert leftovers(store) == ["tiny"]


def test_a_rootfs_without_what_sandboxes_are_entered_with_is_refused(tmp_path: Path) -> None:
    path = hostile_tar(tmp_path / "bare.tar", [_member("etc", tarfile.DIRTYPE), _member("marker")])
    store = TemplateStore(tmp_path / "templates")
    with pytest.raises(InvalidRequest, match="/bin/sh, /usr/bin/setpriv"):
        store.import_tar("bare", path)
    with pytest.raises(InvalidRequest, match="cannot extract"):
        store.import_tar("junk", _write(tmp_path / "junk.tar.gz", b"not a tarball at all"))
    with pytest.raises(NotFound, match="No such file"):
        store.import_tar("none", tmp_path / "missing.tar")
    assert leftovers(store) == []


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# -- sandboxes of a template ------------------------------------------------------


def _mounts() -> str:
    return subprocess.run(["findmnt", "-rn"], capture_output=True, text=True, check=True).stdout


async def test_a_sandbox_s_root_is_its_template(
    driver: LocalSandboxDriver, make_sandbox: MakeSandbox, templates: TemplateStore
) -> None:
    sid = await make_sandbox(template=TINY)
    r = await driver.exec(sid, "cat /etc/os-release /marker; ls /usr/bin | wc -l; id -un")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith('PRETTY_NAME="Tiny Test Linux 1.0"\n')
    assert MARKER in r.stdout
    assert int(r.stdout.split("\n")[-3]) < 40  # the template's programs, not the host's
    assert r.stdout.endswith("user\n")
    # Writable where a sandbox always is; the file API works as on any sandbox.
    await driver.write_file(sid, "/workspace/in.txt", b"uploaded")
    assert (await driver.exec(sid, "cat in.txt")).stdout == "uploaded"
    # The sandbox's mount table names no host path of the template.
    mounts = (await driver.exec(sid, "cat /proc/self/mountinfo")).stdout
    assert " / / " in mounts
    assert str(templates.directory) not in mounts
    # Nothing of the overlay is mounted where the host sees it.
    assert "runtools-root" not in _mounts()
    assert "runtools-layer" not in _mounts()


async def test_sandboxes_of_one_template_share_it_and_change_it_only_for_themselves(
    driver: LocalSandboxDriver, make_sandbox: MakeSandbox, templates: TemplateStore
) -> None:
    root = templates.resolve(TINY).root
    assert root is not None
    before = digest_of(root)
    a, b = await make_sandbox(template=TINY), await make_sandbox(template=TINY)
    # /opt/shared is world-writable in the template: each sandbox writes its own copy.
    wrote = await driver.exec(
        a,
        "echo changed-by-a > /opt/shared/note && touch /opt/shared/new && rm /marker; "
        "echo $?; cat /opt/shared/note; ls /opt/shared",
    )
    assert wrote.stdout.startswith("1\nchanged-by-a\nnew\nnote\n"), wrote  # /marker is root's
    seen = await driver.exec(b, "cat /opt/shared/note /marker; ls /opt/shared")
    assert seen.stdout == f"original\n{MARKER}note\n"
    # Same files underneath: the template's inode numbers, not copies per sandbox.
    ino_a = (await driver.exec(a, "stat -c %i /usr/bin/setpriv")).stdout
    ino_b = (await driver.exec(b, "stat -c %i /usr/bin/setpriv")).stdout
    assert ino_a == ino_b
    await driver.destroy(a)
    assert digest_of(root) == before
    # Root of the sandbox cannot write into the template either: there is none inside.
    r = await driver.exec(b, "touch /usr/bin/x /etc/os-release 2>&1; true")
    assert r.stdout.count("Permission denied") == 2
    assert digest_of(root) == before


async def test_unknown_templates_name_those_there_are(driver: LocalSandboxDriver) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await driver.create(new_id(), SandboxSpec(template="windows-11", resources=SMALL))
    assert refused.value.message == (
        "unknown sandbox template 'windows-11'; available: host-debian, base-ubuntu, tiny"
    )


async def test_the_writable_layer_is_sized_by_disk(
    driver: LocalSandboxDriver, make_sandbox: MakeSandbox, templates: TemplateStore
) -> None:
    sid = await make_sandbox(template=TINY)  # disk: 64 MiB, memory: 256 MiB
    r = await driver.exec(sid, "head -c 100000000 /dev/zero > /opt/shared/big; echo $?")
    assert r.stdout == "1\n"
    assert "No space left on device" in r.stderr
    # Freed again, and usable; the template never saw any of it.
    r = await driver.exec(
        sid, "rm /opt/shared/big && echo ok > /opt/shared/small && cat /opt/shared/small"
    )
    assert r.stdout == "ok\n"
    root = templates.resolve(TINY).root
    assert root is not None
    assert sorted(p.name for p in (root / "opt" / "shared").iterdir()) == ["note"]


@pytest.mark.skipif(
    not Path("/usr/lib/python3/dist-packages/pip").is_dir(), reason="the host has no pip to copy"
)
async def test_what_a_sandbox_installs_is_its_own(
    driver: LocalSandboxDriver, make_sandbox: MakeSandbox, templates: TemplateStore
) -> None:
    root = templates.resolve(TINY).root
    assert root is not None
    before = digest_of(root)
    a, b = await make_sandbox(template=TINY), await make_sandbox(template=TINY)
    await driver.write_file(a, "hello_rt-1.0-py3-none-any.whl", hello_wheel())
    importing = "python3 -c 'import hello_rt; print(hello_rt.GREETING)'"
    r = await driver.exec(
        a,
        # A Debian-based template marks its Python as the system's (PEP 668).
        "python3 -m pip install -q --user --break-system-packages --no-index "
        f"hello_rt-1.0-py3-none-any.whl && {importing}",
        timeout_ms=120_000,
    )
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "hello from a wheel\n"
    r = await driver.exec(b, importing)
    assert "No module named 'hello_rt'" in r.stderr
    assert digest_of(root) == before


async def test_files_move_in_and_out_of_a_templated_sandbox_as_archives(
    driver: LocalSandboxDriver, make_sandbox: MakeSandbox
) -> None:
    sid = await make_sandbox(template=TINY)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for i in range(50):
            info = tarfile.TarInfo(f"pkg/mod{i:02}.py")
            content = f"VALUE = {i}\n".encode()
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))

    async def chunks() -> AsyncIterator[bytes]:
        yield buffer.getvalue()

    written = await driver.write_archive(sid, "project", chunks())
    assert (written.path, written.files) == ("/workspace/project", 50)
    assert (await driver.exec(sid, "cat project/pkg/mod49.py")).stdout == "VALUE = 49\n"
    packed = b"".join([chunk async for chunk in await driver.read_archive(sid, "project")])
    with tarfile.open(fileobj=io.BytesIO(packed)) as archive:
        names = {m.name for m in archive.getmembers() if m.isfile()}
    assert names == {f"pkg/mod{i:02}.py" for i in range(50)}
