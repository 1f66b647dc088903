"""The package is pure Python: one wheel for every platform, no cryptography of its own."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "runtools"


def test_the_package_has_no_compiled_sources() -> None:
    compiled = [p for p in PACKAGE.rglob("*") if p.suffix in {".c", ".h", ".pyx", ".pyi"}]
    assert compiled == []


def test_no_module_imports_cpythons_private_hash_modules() -> None:
    """Digests come from ``hashlib``, whatever interpreter runs the service."""
    private = re.compile(r"\b(_sha256|_sha2|_sha1|_md5|_blake2)\b")
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if private.search(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_the_pages_templates_and_static_files_are_package_data() -> None:
    """A wheel without them would serve no sign-in page and no dashboard."""
    import fnmatch
    import tomllib

    pyproject = tomllib.loads((PACKAGE.parent.parent / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["runtools"]
    api = PACKAGE / "server" / "api"
    files = [*(api / "templates").iterdir(), *(api / "static").iterdir()]
    assert files
    left_out = [
        str(f.relative_to(PACKAGE))
        for f in files
        if not any(fnmatch.fnmatch(str(f.relative_to(PACKAGE)), p) for p in patterns)
    ]
    assert left_out == []
