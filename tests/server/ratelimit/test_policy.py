from dataclasses import replace

from runtools.server.ratelimit.policy import PLANS, per_minute
from support.principals import ADA as BASE


def test_plans_follow_the_documented_tiers() -> None:
    assert [PLANS[p].live for p in ("free", "pro", "enterprise")] == [60, 300, 1000]
    assert per_minute(replace(BASE, plan="pro")) == 300


def test_test_keys_get_less_than_live_keys_on_every_plan() -> None:
    for plan in PLANS:
        live = per_minute(replace(BASE, plan=plan))
        assert per_minute(replace(BASE, plan=plan, is_test=True)) < live


def test_a_keys_own_limit_wins_and_an_unknown_plan_is_treated_as_free() -> None:
    assert per_minute(replace(BASE, plan="enterprise", rate_limit=5)) == 5
    assert per_minute(replace(BASE, plan="platinum")) == 60
