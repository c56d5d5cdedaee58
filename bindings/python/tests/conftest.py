"""Fixtures: a real redis-server on a free loopback port for the whole session (stopped at
the end, also when tests fail), and limiters over it. Keys are unique per test, so tests
never see each other's buckets."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import types
import uuid
from typing import Any, Callable, Iterator

import pytest

import tollgate
from tollgate import _telemetry

STARTUP_SECONDS = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    workdir = tmp_path_factory.mktemp("redis")
    for _attempt in range(3):  # the free port may be taken between choosing and binding
        port = free_port()
        log = open(workdir / f"redis-{port}.log", "wb")
        proc = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(workdir)],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_SECONDS
        while proc.poll() is None and time.monotonic() < deadline and not _ping(port):
            time.sleep(0.05)
        if proc.poll() is None and _ping(port):
            break
        proc.kill()
        proc.wait()
        log.close()
    else:
        pytest.fail("redis-server did not start; see " + str(workdir))
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def key() -> str:
    """A tenant key no other test uses."""
    return "tenant:" + uuid.uuid4().hex[:12]


def redis_config(url: str, **policy: Any) -> dict[str, Any]:
    p = {"match": "tenant:*", "type": "token_bucket", "rate": 100, "burst": 100}
    p.update(policy)
    return {"store": {"type": "redis", "shards": [url]}, "policies": [p]}


@pytest.fixture
def make_limiter(redis_url: str) -> Iterator[Callable[..., tollgate.Limiter]]:
    """make_limiter(**policy_fields, leases=None, config=None): a Redis-backed limiter, closed after the test."""
    made: list[tollgate.Limiter] = []

    def make(config: dict[str, Any] | None = None, cls: type = tollgate.Limiter,
             leases: dict[str, Any] | None = None, **policy: Any) -> tollgate.Limiter:
        if config is None:
            config = redis_config(redis_url, **policy)
            if leases:
                config["leases"] = leases
        lim = cls(config)
        made.append(lim)
        return lim

    yield make
    for lim in made:
        lim.close()


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.01) -> Any:
    """Polls until predicate() is truthy; generous deadlines: the machine may be loaded."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def warm(limiter: tollgate.Limiter, key: str, cost: int = 1) -> None:
    """Waits for the key's first lease (spending cost)."""
    d = limiter.acquire(key, cost, timeout=20.0)
    assert d.allowed, d


def exhaust(limiter: tollgate.Limiter, key: str) -> tollgate.Decision:
    """Spends until the store says the bucket is empty; returns that over_limit decision."""
    def spent() -> Any:
        for _ in range(10_000):
            d = limiter.try_acquire(key)
            if d.reason == "over_limit":
                return [d]  # a denied Decision is falsy
            if not d.allowed:
                return None  # lease pending or cold: give the refill a moment
        return None
    return wait_until(spent)[0]


@pytest.fixture(scope="session", autouse=True)
def _installed_package() -> None:
    if os.environ.get("TOLLGATE_EXPECT_INSTALLED"):
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        assert not os.path.abspath(tollgate.__file__).startswith(here + os.sep), (
            "tests must run against the installed package, not " + tollgate.__file__)


# ---- A stand-in for the opentelemetry API ----------------------------------------------

class FakeInstrument:
    def __init__(self, name: str, kind: str, unit: str = "", description: str = "",
                 callbacks=()) -> None:
        self.name, self.kind, self.unit, self.description = name, kind, unit, description
        self.callbacks = list(callbacks)
        self.points: list[tuple[float, dict]] = []

    def add(self, value, attributes=None):
        self.points.append((value, dict(attributes or {})))

    record = add

    def observe(self) -> list[tuple[float, dict]]:
        """What a collection would read: every callback's observations."""
        return [(o.value, dict(o.attributes or {})) for cb in self.callbacks for o in cb(None)]


class FakeObservation:
    def __init__(self, value, attributes=None):
        self.value, self.attributes = value, attributes


class FakeSpan:
    def __init__(self, name, attributes):
        self.name = name
        self.attributes = dict(attributes or {})

    def set_attribute(self, k, v):
        self.attributes[k] = v

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def fake_otel(monkeypatch):
    """A stand-in for the opentelemetry API (not packaged by Debian): records the
    instruments made through it, with the API's signatures."""
    instruments: dict[str, FakeInstrument] = {}
    spans: list[FakeSpan] = []
    meters: list[tuple] = []

    class Meter:
        def _make(kind):
            def make(self, name, callbacks=None, unit="", description=""):
                assert name not in instruments, f"{name} made twice"
                instruments[name] = FakeInstrument(name, kind, unit, description, callbacks or ())
                return instruments[name]
            return make
        create_counter = _make("counter")
        create_histogram = _make("histogram")
        create_observable_counter = _make("counter")
        create_observable_up_down_counter = _make("updowncounter")

    class Tracer:
        def start_as_current_span(self, name, attributes=None):
            spans.append(FakeSpan(name, attributes))
            return spans[-1]

    otel = types.ModuleType("opentelemetry")
    metrics = types.ModuleType("opentelemetry.metrics")
    trace = types.ModuleType("opentelemetry.trace")
    metrics.get_meter = lambda *a, **k: meters.append(a) or Meter()
    metrics.Observation = FakeObservation
    trace.get_tracer = lambda *a, **k: Tracer()
    otel.metrics, otel.trace = metrics, trace
    monkeypatch.setitem(sys.modules, "opentelemetry", otel)
    monkeypatch.setitem(sys.modules, "opentelemetry.metrics", metrics)
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", trace)
    _telemetry._reset_for_tests()
    instruments_with_meter = types.SimpleNamespace(instruments=instruments, spans=spans, meters=meters)
    yield instruments_with_meter
    _telemetry._reset_for_tests()
