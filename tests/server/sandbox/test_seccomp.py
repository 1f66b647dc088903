"""Every sandboxed process runs under the seccomp filter; ordinary work still runs.

The profile itself is checked on the host as root, where a denied call
would otherwise get past the capability checks (and so answer differently):
that proves the ``EPERM`` comes from the filter. Inside real sandboxes, the
same calls fail, and Python, a venv with pip, a compiler, a test suite and
a tracer keep working.
"""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys

import pyseccomp
import pytest

from runtools.server.sandbox import DEFAULT_TEMPLATE, LocalSandboxDriver
from runtools.server.sandbox.seccomp import build_filter
from support.wheel import hello_wheel

from .conftest import TINY, MakeSandbox

pytestmark = pytest.mark.anyio

# (name, arguments): invalid enough that, unfiltered, even root changes nothing
# (null pointers, bad magic numbers), so a missing rule fails the test harmlessly.
DENIED_PROBES: list[tuple[str, tuple[int, ...]]] = [
    ("add_key", (0, 0, 0, 0, 0)),
    ("request_key", (0, 0, 0, 0)),
    ("keyctl", (0, 0, 0, 0, 0)),  # KEYCTL_GET_KEYRING_ID of nothing
    ("mount", (0, 0, 0, 0, 0)),
    ("umount2", (0, 0)),
    ("pivot_root", (0, 0)),
    ("bpf", (-1, 0, 0)),
    ("perf_event_open", (0, 0, -1, -1, 0)),
    ("kexec_load", (0, 0, 0, 0xFFFF0000)),
    ("kexec_file_load", (-1, -1, 0, 0, 0xFFFF0000)),
    ("init_module", (0, 0, 0)),
    ("finit_module", (-1, 0, 0)),
    ("delete_module", (0, 0)),
    ("clock_settime", (0, 0)),
    ("settimeofday", (0, 0)),  # both null: a no-op for root
    ("adjtimex", (0,)),
    ("reboot", (0, 0, 0, 0)),  # wrong magic
    ("swapon", (0, 0)),
    ("swapoff", (0,)),
    ("userfaultfd", (0xFFFF,)),
    ("io_uring_setup", (0, 0)),
    ("open_by_handle_at", (-1, 0, 0)),
    ("unshare", (0x10000000,)),  # CLONE_NEWUSER
    ("ptrace", (16, 0, 0, 0)),  # PTRACE_ATTACH to pid 0
    ("personality", (0x0040000,)),  # ADDR_NO_RANDOMIZE
]

# Prints {name: errno} for each call of PROBES (a JSON list of [nr, args]).
PROBE_SCRIPT = """
import ctypes, json, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
out = {}
for name, nr, args in json.loads(sys.argv[1]):
    ctypes.set_errno(0)
    rc = libc.syscall(nr, *[ctypes.c_long(a) for a in args])
    out[name] = ctypes.get_errno() if rc == -1 else 0
print(json.dumps(out))
"""


def probes() -> str:
    native = pyseccomp.Arch.NATIVE
    return json.dumps(
        [
            [name, pyseccomp.resolve_syscall(native, name), list(args)]
            for name, args in DENIED_PROBES
        ]
    )


def run_probe_on_host(*, filtered: bool) -> dict[str, int]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE_SCRIPT, probes()],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        preexec_fn=build_filter().install if filtered else None,
    )
    answers: dict[str, int] = json.loads(result.stdout)
    return answers


def test_the_profile_refuses_each_call_that_root_would_get_past() -> None:
    bare = run_probe_on_host(filtered=False)
    # Unfiltered root reaches each call's own checks: never a plain EPERM.
    assert [name for name, e in bare.items() if e == errno.EPERM] == []
    filtered = run_probe_on_host(filtered=True)
    assert filtered == {name: errno.EPERM for name, _ in DENIED_PROBES}


@pytest.mark.parametrize("template", [DEFAULT_TEMPLATE, TINY], ids=["host", "imported"])
async def test_every_process_of_a_sandbox_runs_under_the_filter(
    driver: LocalSandboxDriver, make_sandbox: MakeSandbox, template: str
) -> None:
    sandbox = await make_sandbox(template=template)
    await driver.exec(sandbox, "sleep 30 >/dev/null 2>&1 &")
    r = await driver.exec(sandbox, "grep -H '^Seccomp:' /proc/[0-9]*/status")
    lines = r.stdout.splitlines()
    # PID 1 (bubblewrap's reaper), the init, the background sleep, this grep.
    assert len(lines) >= 4, r.stdout
    assert all(line.split()[-1] == "2" for line in lines), r.stdout


async def test_denied_calls_fail_inside_a_sandbox_of_an_imported_template(
    driver: LocalSandboxDriver, make_sandbox: MakeSandbox
) -> None:
    sandbox = await make_sandbox(template=TINY)
    r = await driver.exec(sandbox, f"python3 -c '{PROBE_SCRIPT}' '{probes()}'")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) == {name: errno.EPERM for name, _ in DENIED_PROBES}


async def test_denied_calls_fail_inside_a_sandbox(driver: LocalSandboxDriver, sandbox: str) -> None:
    r = await driver.exec(sandbox, f"python3 -c '{PROBE_SCRIPT}' '{probes()}'")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) == {name: errno.EPERM for name, _ in DENIED_PROBES}

    # The tools people try, with the error they print.
    r = await driver.exec(sandbox, "unshare -Ur id")
    assert r.exit_code != 0
    assert "Operation not permitted" in r.stderr
    r = await driver.exec(sandbox, "keyctl add user secret value @u")
    assert r.exit_code != 0
    assert "Operation not permitted" in r.stderr
    r = await driver.exec(sandbox, "setarch -R true")
    assert r.exit_code != 0
    assert "Operation not permitted" in r.stderr


async def test_what_the_filter_leaves_open(driver: LocalSandboxDriver, sandbox: str) -> None:
    script = """
import ctypes, os, threading
libc = ctypes.CDLL(None, use_errno=True)
print("query", libc.personality(0xFFFFFFFF))
ctypes.set_errno(0)
print("clone3", libc.syscall(435, 0, 0), ctypes.get_errno())  # falls back to clone
t = threading.Thread(target=print, args=("thread",)); t.start(); t.join()
pid = os.fork()
if pid == 0:
    os._exit(0 if libc.ptrace(0, 0, 0, 0) == 0 else 1)  # PTRACE_TRACEME
print("traceme", os.waitpid(pid, 0)[1])
"""
    r = await driver.exec(sandbox, f"python3 -c '{script}'")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.split("\n")[:5] == [
        "query 0",
        f"clone3 -1 {errno.ENOSYS}",
        "thread",
        "traceme 0",
        "",
    ]


async def test_ordinary_work_still_runs(driver: LocalSandboxDriver, sandbox: str) -> None:
    await driver.write_file(sandbox, "hello_rt-1.0-py3-none-any.whl", hello_wheel())
    r = await driver.exec(
        sandbox,
        "python3 -m venv venv && venv/bin/pip install -q --no-index hello_rt-1.0-py3-none-any.whl"
        " && venv/bin/python -c 'import hello_rt; print(hello_rt.GREETING)'",
        timeout_ms=120_000,
    )
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == "hello from a wheel"

    await driver.write_file(
        sandbox,
        "test_math.py",
        b"import unittest\n\nclass T(unittest.TestCase):\n"
        b"    def test_add(self):\n        self.assertEqual(1 + 1, 2)\n",
    )
    r = await driver.exec(sandbox, "python3 -m unittest -q test_math", timeout_ms=60_000)
    assert r.exit_code == 0, r.stderr
    assert "OK" in r.stderr


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler on this host")
async def test_a_compiler_still_runs(driver: LocalSandboxDriver, sandbox: str) -> None:
    await driver.write_file(
        sandbox, "hello.c", b'#include <stdio.h>\nint main(void){puts("42");}\n'
    )
    r = await driver.exec(sandbox, "gcc -O1 -o hello hello.c && ./hello", timeout_ms=120_000)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "42\n"


@pytest.mark.skipif(shutil.which("strace") is None, reason="no strace on this host")
async def test_a_tracer_still_traces_its_own_child(
    driver: LocalSandboxDriver, sandbox: str
) -> None:
    r = await driver.exec(sandbox, "strace -f -e trace=execve true")
    assert r.exit_code == 0, r.stderr
    assert "execve(" in r.stderr
    # Attaching to a process it did not start is refused.
    r = await driver.exec(sandbox, "sleep 30 & strace -p $! -e trace=none; kill $!")
    assert "Operation not permitted" in r.stderr
