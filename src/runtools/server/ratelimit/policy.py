"""How many requests per minute a credential may make: plan defaults and per-key limits.

Windows are fixed, one minute long, aligned to the epoch minute, so a
window ends (``X-RateLimit-Reset``) at the same instant on every node.

Pure functions of the principal; the numbers are documented in
``docs/api.md`` ("Rate limits"). An organization's ``plan`` sets the default;
``rt_test_`` keys get a lower default so test traffic cannot starve
production; a key's own ``rateLimit`` wins over both, but never above the
plan's live limit (checked when set, and capped again if the plan shrinks).
"""

from __future__ import annotations

from dataclasses import dataclass

from runtools.server.domain.principal import Principal


@dataclass(frozen=True)
class PlanLimits:
    live: int
    test: int


PLANS: dict[str, PlanLimits] = {
    "free": PlanLimits(live=60, test=20),
    "pro": PlanLimits(live=300, test=60),
    "enterprise": PlanLimits(live=1000, test=200),
}
DEFAULT_PLAN = "free"
WINDOW_SECONDS = 60


def window_start(now: float) -> int:
    """The start of the window holding ``now`` (seconds since the epoch)."""
    return int(now // WINDOW_SECONDS) * WINDOW_SECONDS


def plan_limits(plan: str) -> PlanLimits:
    return PLANS.get(plan, PLANS[DEFAULT_PLAN])


def per_minute(principal: Principal) -> int:
    limits = plan_limits(principal.plan)
    if principal.rate_limit is not None:
        # Never above the plan's: a key's own limit set under a larger plan is capped
        # as soon as its organization moves to a smaller one.
        return min(principal.rate_limit, limits.live)
    return limits.test if principal.is_test else limits.live


def credential_bucket(principal: Principal) -> str:
    return f"{principal.credential_type}:{principal.credential_id}"
