"""The Prometheus text exposition of a limiter, as ``prometheus_client`` serves one, with no
package beyond tollgate: the native text (the same as C++'s ``tollgate::prometheus_text``),
in the metric vocabulary of docs/observability.md.

    from tollgate import prometheus
    body = prometheus.generate_latest(limiter)            # bytes, CONTENT_TYPE_LATEST
    app = prometheus.make_wsgi_app(limiter)               # a WSGI app for /metrics
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

CONTENT_TYPE_LATEST = "text/plain; version=0.0.4; charset=utf-8"

__all__ = ["CONTENT_TYPE_LATEST", "generate_latest", "make_wsgi_app"]


def generate_latest(limiter: Any) -> bytes:
    """The limiter's metrics in the text format 0.0.4, UTF-8."""
    return limiter.prometheus_text().encode("utf-8")


def make_wsgi_app(limiter: Any) -> Callable[[dict, Callable[..., Any]], Iterable[bytes]]:
    """A WSGI app answering every GET with the limiter's metrics (mount it at /metrics)."""

    def app(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return [b""]
        body = generate_latest(limiter)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST),
                                  ("Content-Length", str(len(body)))])
        return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    return app
