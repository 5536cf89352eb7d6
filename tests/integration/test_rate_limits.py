"""Rate-limit feedback over HTTP, through the local API gateway: every 429 (the usage plan's
throttle and quota, the tenant's queue cap) says when to retry and which limit it was, and a
create tells the room left under the queue cap in RateLimit-* headers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from qwen_edit_cli.local.apigateway import LocalApiGateway, UsagePlan
from qwen_edit_cli.local.drive import wait_until
from qwen_edit_cli.local.template import Resolver, load_template

KEY, OTHER_KEY = "key-a", "key-b"
PRO = {"model": "qwen-image-2.0-pro", "prompt": "a poster"}  # 2 calls a minute: 30 s apart


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # some UTC day, 08:00

    def __call__(self) -> float:
        return self.now


@contextmanager
def gateway(stack, plan: UsagePlan | None = None) -> Iterator[httpx.Client]:
    server = LocalApiGateway(stack, [KEY, OTHER_KEY], "127.0.0.1", 0, usage_plan=plan).start()
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": KEY}) as client:
            yield client
    finally:
        server.stop()


def limit_of(answer: httpx.Response) -> tuple[int, str, str, int]:
    """(status, code, the limit named, Retry-After) of a 429; the header and details agree."""
    error = answer.json()["error"]
    (detail,) = error["details"]
    assert answer.headers["Retry-After"] == str(detail["retry_after_seconds"])
    return answer.status_code, error["code"], detail["limit"], int(answer.headers["Retry-After"])


def test_the_template_usage_plan_is_what_the_local_gateway_applies():
    def plan(**parameters: str) -> UsagePlan:
        resolve = Resolver(load_template(), parameters, lambda name: name, lambda *a: "")
        auth = resolve.value(load_template()["Resources"]["Api"]["Properties"]["Auth"])
        return UsagePlan.of(auth["UsagePlan"])

    default = plan()
    assert (default.rate, default.burst, default.quota_per_day) == (10, 20, None)
    tuned = plan(ApiThrottleRateLimit="50", ApiThrottleBurstLimit="80", ApiQuotaPerDay="1000")
    assert (tuned.rate, tuned.burst, tuned.quota_per_day) == (50, 80, 1000)


def test_a_key_over_its_burst_is_throttled_with_retry_after_1_s(stack):
    clock = Clock()
    with gateway(stack, UsagePlan(rate=1, burst=2, clock=clock)) as api:
        assert [api.get("/models").status_code for _ in range(2)] == [200, 200]
        throttled = api.get("/models")
        assert limit_of(throttled) == (429, "Throttled", "throttle", 1)
        assert api.get("/models", headers={"x-api-key": OTHER_KEY}).status_code == 200  # per key
        clock.now += 1  # the Retry-After: one token back
        assert api.get("/models").status_code == 200
        assert api.get("/models").status_code == 429


def test_a_key_past_its_daily_quota_gets_quota_exceeded_until_the_next_day(stack):
    clock = Clock()
    with gateway(stack, UsagePlan(rate=100, burst=100, quota_per_day=2, clock=clock)) as api:
        assert [api.get("/models").status_code for _ in range(2)] == [200, 200]
        # API Gateway cannot know when the period resets: a whole day is the honest wait.
        assert limit_of(api.get("/models")) == (429, "QuotaExceeded", "quota", 86400)
        clock.now += 86400
        assert api.get("/models").status_code == 200


def test_a_create_tells_the_room_under_the_queue_cap_and_a_full_queue_is_429(stack, monkeypatch):
    from qwen_edit import runtime

    monkeypatch.setenv("MAX_QUEUED_JOBS_PER_TENANT", "2")
    runtime.context.cache_clear()
    with gateway(stack) as api:
        first = api.post("/generations", json=PRO)
        assert first.status_code == 202
        # As draft-ietf-httpapi-ratelimit-headers-06: a cap of 2, this job takes one place,
        # and the pro family's queue moves every 30 s.
        assert ratelimit(first) == ("2", "1", "30")
        second = api.post("/generations", json=PRO)
        wait_until(
            lambda: (
                [e.job_id for e in stack.ctx.queue.entries()] == [second.json()["id"]]
                and stack.ctx.jobs.get(first.json()["id"]).provider_call is not None
            ),
            what="the first job called, the second waiting",
        )
        third = api.post("/generations", json=PRO)
        assert ratelimit(third) == ("2", "0", "30")
        wait_until(lambda: len(stack.ctx.queue.entries()) == 2, what="two jobs waiting")
        full = api.post("/generations", json=PRO)
        assert limit_of(full) == (429, "QueueFull", "queue", 30)
        assert ratelimit(full) == ("2", "0", "30")

        # Another tenant's keyed create: its own count; a replay counts the queue as it is now.
        keyed = {"Idempotency-Key": "k1", "x-api-key": OTHER_KEY}
        assert ratelimit(api.post("/generations", json=PRO, headers=keyed)) == ("2", "1", "30")
        wait_until(lambda: len(stack.ctx.queue.entries()) == 3, what="its job in line")
        replay = api.post("/generations", json=PRO, headers=keyed)
        assert replay.status_code == 202 and ratelimit(replay) == ("2", "1", "30")
        for job in (second, third):
            api.post(f"/jobs/{job.json()['id']}/cancel")


def ratelimit(answer: httpx.Response) -> tuple[str, str, str]:
    return tuple(answer.headers[f"RateLimit-{name}"] for name in ("Limit", "Remaining", "Reset"))


@pytest.mark.parametrize("route", ["/models", "/jobs"])
def test_answers_that_count_nothing_carry_no_ratelimit_headers(stack, route):
    with gateway(stack) as api:
        answer = api.get(route)
    assert answer.status_code == 200 and "RateLimit-Limit" not in answer.headers
