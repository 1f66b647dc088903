"""How many requests per minute a credential may make: plan defaults and per-key limits.

Pure functions of the principal; the numbers are documented in
``docs/api.md`` ("Rate limits"). An organization's ``plan`` sets the default;
``rt_test_`` keys get a lower default so test traffic cannot starve
production; a key's own ``rateLimit`` (never above the plan's) wins over both.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtools.server.auth.principal import Principal


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


def plan_limits(plan: str) -> PlanLimits:
    return PLANS.get(plan, PLANS[DEFAULT_PLAN])


def per_minute(principal: Principal) -> int:
    if principal.rate_limit is not None:
        return principal.rate_limit
    limits = plan_limits(principal.plan)
    return limits.test if principal.is_test else limits.live


def credential_bucket(principal: Principal) -> str:
    return f"{principal.credential_type}:{principal.credential_id}"
