"""The one C extension: the steady path of authentication (see steady.py).

Everything else about the package is in pyproject.toml. The extension is
optional: without a C compiler the install goes on, and the same path runs
in Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "runtools.server.auth._steady",
            sources=["src/runtools/server/auth/_steady.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
