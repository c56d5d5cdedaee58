"""Tenant groups (docs/quotas.md) through the installed package, on the in-process store: a
group budget in the JSON config, the "over_group_limit" reason, and the config errors of the
share fields. Waits are bounded; no assertion depends on how long anything takes."""

import json
import time
from typing import Any, Iterator

import pytest

import tollgate
from conftest import warm

# A group of 10 tokens that then refills one token per 1000 s: once spent it stays spent for
# the test. Each tenant's own rate (100) is far above it, so the group is what runs out.
GROUP_CONFIG: dict[str, Any] = {
    "groups": [{"name": "gpu", "rate": 0.001, "burst": 10}],
    "policies": [{"match": "tenant:*", "group": "gpu", "type": "token_bucket", "rate": 100,
                  "weight": 2, "guaranteed_rate": 0.0005, "fair_instances": True}],
}


@pytest.fixture
def group_limiter() -> Iterator[tollgate.Limiter]:
    with tollgate.Limiter(json.dumps(GROUP_CONFIG)) as lim:
        yield lim


def spend_until(limiter: tollgate.Limiter, key: str, reason: str, never: str,
                timeout: float = 30.0) -> tollgate.Decision:
    """Spends until a denial gives `reason` (not merely a lease on its way); `never` must not
    be the reason on the way."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = limiter.try_acquire(key)
        if not d.allowed and d.reason == reason:
            return d
        assert d.reason != never, d
        if not d.allowed:
            time.sleep(0.001)  # paces the polling; decides nothing
    raise AssertionError(f"no {reason} within {timeout} s")


def test_reasons_include_over_group_limit():
    assert "over_group_limit" in tollgate.REASONS
    assert tollgate.REASONS.index("over_group_limit") == 15
    assert tollgate.REASONS[-1] == "in_debt"
    assert len(set(tollgate.REASONS)) == len(tollgate.REASONS) == 17


def test_a_spent_group_denies_with_over_group_limit(group_limiter, key):
    warm(group_limiter, key)
    d = spend_until(group_limiter, key, "over_group_limit", "over_limit")
    assert not d and d.allowed is False
    assert d.reason in tollgate.REASONS
    assert d.retry_after > 0.0
    assert "over_group_limit" in repr(d)
    # another tenant of the group meets the same spent budget, not its own rate
    other = key + "-other"
    assert spend_until(group_limiter, other, "over_group_limit", "over_limit").reason == \
        "over_group_limit"
    s = group_limiter.stats()
    assert s["denied"]["over_group_limit"] >= 2
    assert s["denied"]["over_limit"] == 0
    assert s["denied_total"] == sum(s["denied"].values())

    @group_limiter.limit(key)
    def spend() -> None:  # pragma: no cover - must not run
        pytest.fail("ran over a spent group budget")

    with pytest.raises(tollgate.RateLimitExceeded) as info:
        spend()
    assert info.value.reason == "over_group_limit"


def test_the_wsgi_middleware_answers_429_with_the_reason(group_limiter, key):
    warm(group_limiter, key)
    spend_until(group_limiter, key, "over_group_limit", "over_limit")
    seen: list[Any] = []

    def app(environ, start_response):  # pragma: no cover - must not be called
        seen.append(environ)
        start_response("200 OK", [])
        return [b"ok"]

    mw = tollgate.WSGIMiddleware(app, group_limiter, key=lambda environ: key)
    answer: dict[str, Any] = {}

    def start_response(status, headers, *exc):
        answer["status"], answer["headers"] = status, dict(headers)

    b"".join(mw({}, start_response))
    assert answer["status"].startswith("429")
    assert answer["headers"]["Tollgate-Reason"] == "over_group_limit"
    assert int(answer["headers"]["Retry-After"]) >= 1
    assert seen == []


def with_policy(**fields: Any) -> dict[str, Any]:
    config = json.loads(json.dumps(GROUP_CONFIG))
    config["policies"][0].update(fields)
    return config


@pytest.mark.parametrize("config, field", [
    # a weight (or guaranteed rate) on a policy whose group has no budget
    ({"policies": [{"match": "tenant:*", "group": "gpu", "type": "token_bucket", "rate": 5,
                    "weight": 2}]}, "policies[0].weight"),
    ({"policies": [{"match": "tenant:*", "type": "token_bucket", "rate": 5,
                    "guaranteed_rate": 1}]}, "policies[0].guaranteed_rate"),
    (with_policy(weight=0), "policies[0].weight"),
    (with_policy(weight="heavy"), "policies[0].weight"),
    (with_policy(guaranteed_rate=1), "policies[0].guaranteed_rate"),  # above the group's rate
    (with_policy(fair_instances="yes"), "policies[0].fair_instances"),
    ({"groups": [{"name": "gpu"}], "policies": GROUP_CONFIG["policies"]}, "groups[0].rate"),
    ({"groups": [{"name": "gpu", "rate": 1, "size": 3}], "policies": GROUP_CONFIG["policies"]},
     "groups[0].size"),
])
def test_bad_share_fields_raise_config_error_naming_the_field(config, field):
    with pytest.raises(tollgate.ConfigError) as info:
        tollgate.Limiter(config)
    assert isinstance(info.value, ValueError)
    assert info.value.field == field
    assert field in str(info.value)
    assert info.value.reason
