from collections.abc import Callable, MutableMapping, Sequence
from typing import Any

from runtools.server.auth.principal import Principal

SHA256_CODE: str

def sha256_hex(data: bytes) -> str: ...
def portable_sha256_hex(data: bytes) -> str: ...

class SteadyPath:
    def __init__(
        self,
        *,
        entries: dict[str, tuple[Any, float]],
        monotonic: Callable[[], float],
        timestamp: Callable[[], float],
        touch: Callable[[str, float], float],
        meters: dict[Any, Any] | None,
        wall_clock: Callable[[], float],
        open_meter: Callable[[Principal, float], Any],
        over_limit: Callable[[Any, MutableMapping[str, Any]], Any],
    ) -> None: ...
    @property
    def hits(self) -> int: ...
    def __call__(
        self, raw_headers: Sequence[tuple[bytes, bytes]], state: MutableMapping[str, Any]
    ) -> Principal | None: ...
