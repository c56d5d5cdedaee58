"""Native log lines through logging.getLogger("tollgate"); OpenTelemetry only when importable."""

import asyncio
import importlib.util
import logging
import subprocess
import sys
import textwrap

import pytest

import tollgate
from tollgate import _telemetry
from conftest import free_port, wait_until, warm


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records():
    handler = Records()
    log = logging.getLogger("tollgate")
    old = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        yield handler.records
    finally:
        log.removeHandler(handler)
        log.setLevel(old)


def test_native_log_lines_reach_python_logging(records, key):
    dead = free_port()  # nothing listens there: the connection fails and the SDK logs it
    config = {"store": {"type": "redis", "shards": [f"redis://app:s3cret@127.0.0.1:{dead}"],
                        "connect_timeout_ms": 200},
              "policies": [{"match": "tenant:*", "type": "token_bucket", "rate": 10}]}
    with tollgate.Limiter(config) as lim:
        def logged() -> bool:
            lim.try_acquire(key)
            return any(r.levelno >= logging.WARNING for r in records)
        wait_until(logged, interval=0.05)
    assert all(r.name == "tollgate" for r in records)
    assert not any("s3cret" in r.getMessage() for r in records)


def test_without_opentelemetry_nothing_is_recorded(make_limiter, key):
    if importlib.util.find_spec("opentelemetry") is not None:
        pytest.skip("opentelemetry is installed here")
    _telemetry._reset_for_tests()
    assert _telemetry.otel() is None
    lim = make_limiter()
    assert asyncio.run(lim.acquire_async(key, 1, timeout=20)).allowed


def test_opentelemetry_metrics_and_spans_when_importable(fake_otel, make_limiter, key):
    instruments, spans = fake_otel.instruments, fake_otel.spans
    lim = make_limiter()
    d = asyncio.run(lim.acquire_async(key, 2, timeout=20))
    assert d.allowed
    # Reported after the grant is applied, so possibly just after the acquire completed.
    wait_until(lambda: any(a == {"tollgate.outcome": "ok"}
                           for _, a in instruments["tollgate.lease.duration"].points))
    assert instruments["tollgate.lease.duration"].points[0][0] >= 0
    assert fake_otel.meters[0][0] == "Tollgate"
    assert spans[0].name == "tollgate.acquire"
    assert spans[0].attributes == {"tollgate.cost": 2, "tollgate.allowed": True,
                                   "tollgate.reason": "ok"}

    assert lim.acquire(key, 1, timeout=20).allowed
    assert spans[1].name == "tollgate.acquire" and spans[1].attributes["tollgate.cost"] == 1

    @lim.limit(key)
    def f() -> None:
        pass

    f()
    lim.try_acquire("nobody:" + key)  # no_policy: every decision counts, not only the middleware's
    observed = instruments["tollgate.decisions"].observe()
    assert not any(key in str(a) for _, a in observed)
    # The decisions of every live limiter (other tests' limiters may still be open).
    live = [s for s in (_telemetry._live_stats())]
    by: dict[tuple[str, str], int] = {}
    for v, a in observed:
        by[(a["tollgate.result"], a["tollgate.reason"])] = by.get((a["tollgate.result"], a["tollgate.reason"]), 0) + v
    assert by[("admitted", "ok")] == sum(s["admitted"] for s in live)
    assert by[("denied", "no_policy")] == sum(s["denied"]["no_policy"] for s in live)
    assert by[("denied", "no_policy")] >= 1
    assert lim.stats()["admitted"] == 3


def test_interpreter_exit_with_open_limiters_and_waits(redis_url, key):
    """Exiting with an open limiter, a pending wait and logging on must not hang or crash."""
    script = textwrap.dedent(f"""
        import asyncio, logging, threading, tollgate
        logging.basicConfig(level=logging.DEBUG)
        lim = tollgate.Limiter({{"store": {{"type": "redis", "shards": ["{redis_url}"]}},
            "policies": [{{"match": "tenant:*", "type": "token_bucket", "rate": 0.001, "burst": 1}}]}})
        dead = tollgate.Limiter({{"store": {{"type": "redis", "shards": ["redis://127.0.0.1:{free_port()}"]}},
            "policies": [{{"match": "*", "type": "token_bucket", "rate": 1}}]}})
        dead.try_acquire("x")
        lim.acquire("{key}", 1, timeout=20)
        threading.Thread(target=lim.acquire, args=("{key}", 1, 600), daemon=True).start()
        loop = asyncio.new_event_loop()
        loop.create_task(lim.acquire_async("{key}", 1, timeout=600))
        loop.run_until_complete(asyncio.sleep(0.01))
        print("exiting")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "exiting" in out.stdout
