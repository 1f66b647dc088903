"""Importing the SDK must not need the API service's dependencies.

The SDK is installed on laptops and CI runners that never run the server;
pulling in FastAPI or a database driver there would be slow at best and an
ImportError at worst.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SERVER_ONLY = ["fastapi", "sqlalchemy", "starlette", "uvicorn", "alembic", "redis", "psycopg"]


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_importing_runtools_loads_no_server_dependency() -> None:
    result = run_python(
        f"""
        import sys
        import runtools
        from runtools import RunTools, AsyncRunTools
        RunTools(api_key="rt_test_x")
        AsyncRunTools(api_key="rt_test_x")
        loaded = sorted({{m.split('.')[0] for m in sys.modules}} & {set(SERVER_ONLY)!r})
        assert not loaded, loaded
        """
    )
    assert result.returncode == 0, result.stderr


def test_the_sdk_works_when_server_dependencies_cannot_be_imported() -> None:
    result = run_python(
        f"""
        import sys
        from importlib.abc import MetaPathFinder

        BLOCKED = {set(SERVER_ONLY)!r}

        class BlockServerDependencies(MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in BLOCKED:
                    raise ImportError(f"{{name}} is blocked: the SDK must not need it")
                return None

        sys.meta_path.insert(0, BlockServerDependencies())

        try:
            import fastapi
        except ImportError:
            pass
        else:
            raise SystemExit("the blocker does not work")

        import runtools
        rt = runtools.RunTools(api_key="rt_test_x", base_url="http://127.0.0.1:1", max_retries=0)
        arts = runtools.AsyncRunTools(access_token="tok")
        rt.api_keys, rt.audit_logs, arts.api_keys, arts.audit_logs
        try:
            rt.me()
        except runtools.APIConnectionError:
            pass
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_runtools_verify_loads_no_server_dependency() -> None:
    result = run_python(
        f"""
        import sys
        import runtools.verify
        from runtools.verify import Verifier, VerifyMiddleware
        VerifyMiddleware(lambda scope, receive, send: None, Verifier(service_key="rt_test_x"))
        loaded = sorted({{m.split('.')[0] for m in sys.modules}} & {set(SERVER_ONLY)!r})
        assert not loaded, loaded
        """
    )
    assert result.returncode == 0, result.stderr
