"""The middleware through real HTTP servers on loopback, seen by a real HTTP client."""

import asyncio
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import threading
from socketserver import ThreadingMixIn
from typing import Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

import tollgate
from conftest import exhaust, wait_until, warm


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def get(port: int, path: str, tenant: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"X-Tenant": tenant})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def tenant_key(header_value: str | None) -> str | None:
    return None if header_value is None else "tenant:" + header_value


@pytest.fixture
def flask_server(make_limiter) -> Iterator[tuple[int, tollgate.Limiter]]:
    flask = pytest.importorskip("flask")
    lim = make_limiter(rate=0.001, burst=3, leases={"max_fraction": 1})
    app = flask.Flask("tollgate-test")

    @app.get("/hello")
    def hello() -> str:
        d = flask.request.environ["tollgate.decision"]
        return f"hello {d.reason}"

    app.wsgi_app = tollgate.WSGIMiddleware(
        app.wsgi_app, lim, key=lambda environ: tenant_key(environ.get("HTTP_X_TENANT")))
    server = make_server("127.0.0.1", 0, app, server_class=ThreadingWSGIServer,
                         handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port, lim
    finally:
        server.shutdown()
        server.server_close()
        thread.join(30)


def admitted_then_429(port: int, lim: tollgate.Limiter, key: str, path: str) -> None:
    tenant = key.split(":", 1)[1]
    warm(lim, key)
    # Admitted once the local lease holds a token (a refill may still be on its way).
    status, _, body = wait_until(lambda: [r for r in [get(port, path, tenant)] if r[0] == 200])[0]
    assert (status, body) == (200, b"hello ok")
    exhaust(lim, key)
    status, headers, body = get(port, path, tenant)
    assert status == 429
    assert int(headers["retry-after"]) >= 1
    assert headers["tollgate-reason"] == "over_limit"
    assert b"Too Many Requests" in body


def test_wsgi_middleware_with_flask(flask_server, key):
    port, lim = flask_server
    admitted_then_429(port, lim, key, "/hello")
    # Requests without the header are not limited.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/hello")
    assert conn.getresponse().status == 500  # no decision in environ: the app itself fails
    conn.close()


async def asgi_app(scope, receive, send) -> None:
    assert scope["type"] == "http"
    d = scope["tollgate.decision"]
    body = f"hello {d.reason}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def asgi_tenant(scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-tenant":
            return "tenant:" + value.decode()
    return None


@pytest.fixture
def uvicorn_server(make_limiter) -> Iterator[tuple[int, tollgate.Limiter]]:
    uvicorn = pytest.importorskip("uvicorn")
    lim = make_limiter(rate=0.001, burst=3, leases={"max_fraction": 1})
    app = tollgate.ASGIMiddleware(asgi_app, lim, key=asgi_tenant)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", loop="asyncio",
                            http="h11")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                              daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started)
        yield port, lim
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def test_asgi_middleware_with_uvicorn(uvicorn_server, key):
    port, lim = uvicorn_server
    admitted_then_429(port, lim, key, "/")


def test_retry_after_header_rounds_up():
    class D:
        def __init__(self, s: float) -> None:
            self.retry_after = s
    assert tollgate.middleware.retry_after_header(D(0.0)) == "1"
    assert tollgate.middleware.retry_after_header(D(0.2)) == "1"
    assert tollgate.middleware.retry_after_header(D(1.01)) == "2"
    assert tollgate.middleware.retry_after_header(D(7.0)) == "7"


def test_sample_flask_app_self_test():
    app = os.path.join(os.path.dirname(__file__), "..", "..", "..", "samples", "python", "app.py")
    if not os.path.exists(app):
        pytest.skip("the samples are not next to these tests")
    out = subprocess.run([sys.executable, app, "--self-test"], capture_output=True, text=True,
                         timeout=120, cwd=tempfile.gettempdir())
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    assert "429" in out.stdout
