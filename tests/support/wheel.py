"""A minimal pure-Python wheel (``hello_rt``), built in the test: no index is reachable."""

from __future__ import annotations

import io
import zipfile

__all__ = ["hello_wheel"]


def hello_wheel() -> bytes:
    """A minimal pure-Python wheel, built here: no index is reachable from inside."""
    files = {
        "hello_rt/__init__.py": "GREETING = 'hello from a wheel'\n",
        "hello_rt-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: hello-rt\nVersion: 1.0\n",
        "hello_rt-1.0.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{name},,\n" for name in files) + "hello_rt-1.0.dist-info/RECORD,,\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as whl:
        for name, text in {**files, "hello_rt-1.0.dist-info/RECORD": record}.items():
            whl.writestr(name, text)
    return buf.getvalue()
