"""A Flask app whose requests spend a tenant's quota through tollgate's WSGI middleware.

    samples/python/run                      # serves on http://127.0.0.1:8000 (in-process store)
    REDIS_URL=redis://127.0.0.1:6379 samples/python/run   # quotas shared through Redis
    curl -i -H 'X-Tenant: acme' http://127.0.0.1:8000/infer?units=3

Each tenant may spend 5 units per second (bursts of 10); /infer costs ?units=N, and
/gpu holds one of 2 concurrency permits per tenant while it works. Denied requests get
429 with Retry-After. `samples/python/run --self-test` starts it on a free port, sends
requests like a client would, prints what came back and exits.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIServer, make_server

from flask import Flask, jsonify, request

import tollgate


def make_config() -> dict:
    config: dict = {
        "cold_keys": {"mode": "optimistic", "allowance": 2},
        "leases": {"max_fraction": 1},
        "policies": [
            {"match": "tenant:*", "type": "token_bucket", "rate": 5, "burst": 10},
            {"match": "gpu:*", "type": "concurrency", "limit": 2},
        ],
    }
    if os.environ.get("REDIS_URL"):
        config["store"] = {"type": "redis", "shards": [os.environ["REDIS_URL"]]}
    return config


def tenant_key(environ: dict) -> str | None:
    tenant = environ.get("HTTP_X_TENANT")
    return None if not tenant else "tenant:" + tenant


def request_cost(environ: dict) -> int:
    for part in environ.get("QUERY_STRING", "").split("&"):
        if part.startswith("units="):
            try:
                return max(1, int(part[6:]))
            except ValueError:
                break
    return 1


def create_app(limiter: tollgate.Limiter) -> Flask:
    app = Flask(__name__)

    @app.get("/infer")
    def infer():
        d = request.environ.get("tollgate.decision")
        return jsonify(ok=True, remaining=d.remaining if d else None)

    @app.get("/gpu")
    def gpu():
        tenant = request.headers.get("X-Tenant", "anonymous")
        try:
            with limiter.permit("gpu:" + tenant):
                time.sleep(0.05)  # the work that holds the GPU
                return jsonify(ok=True)
        except tollgate.RateLimitExceeded as e:
            return jsonify(ok=False, reason=e.reason), 429, {
                "Retry-After": tollgate.middleware.retry_after_header(e.decision)}

    app.wsgi_app = tollgate.WSGIMiddleware(app.wsgi_app, limiter, key=tenant_key,
                                           cost=request_cost)
    return app


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def self_test(app: Flask) -> int:
    server = make_server("127.0.0.1", 0, app, server_class=ThreadingWSGIServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    statuses: dict[int, int] = {}
    retry_after = None
    for _ in range(30):
        req = urllib.request.Request(base + "/infer?units=1", headers={"X-Tenant": "acme"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status = r.status
        except urllib.error.HTTPError as e:
            status = e.code
            retry_after = e.headers.get("Retry-After")
        statuses[status] = statuses.get(status, 0) + 1
    server.shutdown()
    print(f"30 requests for tenant acme: {statuses}; Retry-After on a 429: {retry_after}")
    return 0 if statuses.get(200) and statuses.get(429) and retry_after else 1


def main() -> int:
    logging.basicConfig(level=logging.INFO)
    with tollgate.Limiter(make_config()) as limiter:
        app = create_app(limiter)
        if "--self-test" in sys.argv:
            return self_test(app)
        port = int(os.environ.get("PORT", "8000"))
        print(f"serving on http://127.0.0.1:{port}  (try: curl -i -H 'X-Tenant: acme' "
              f"http://127.0.0.1:{port}/infer?units=3)")
        make_server("127.0.0.1", port, app, server_class=ThreadingWSGIServer).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
