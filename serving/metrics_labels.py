"""Prometheus labels by route, not by requested path: unknown paths share one label.

BentoML's traffic-metrics middleware (the outermost one, so it sees requests before the API-key
check) labels every request with its raw path; 2,000 random paths grew ``/metrics`` from 6.4 KB to
9 MB and each worker by 110-160 MB. BentoML has no setting for this, so its middleware class is
replaced, before the application is built, by a subclass that shows it the route instead, and the
inner application still gets the path the client asked for.
"""

from __future__ import annotations

UNKNOWN_ROUTE = "/{unknown}"
_ORIGINAL = "prospect.original_path"


class _RestorePath:
    """Give the application behind the metrics middleware the path the client asked for."""

    def __init__(self, app) -> None:  # noqa: ANN001 - an ASGI app
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if _ORIGINAL in scope:
            scope = {**scope, "path": scope[_ORIGINAL]}
            del scope[_ORIGINAL]
        await self.app(scope, receive, send)


def label_by_route(routes: frozenset[str]) -> None:
    """Make BentoML's metrics label requests to any path outside ``routes`` as UNKNOWN_ROUTE."""
    from bentoml._internal.server.http import instruments

    base = instruments.RunnerTrafficMetricsMiddleware
    original = getattr(base, "prospect_base", base)

    class RouteLabelledMetrics(original):
        prospect_base = original

        def __init__(self, app, **options) -> None:  # noqa: ANN001, ANN003
            super().__init__(_RestorePath(app), **options)

        async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
            if scope["type"] == "http" and scope["path"] not in routes:
                scope = {**scope, "path": UNKNOWN_ROUTE, _ORIGINAL: scope["path"]}
            await super().__call__(scope, receive, send)

    instruments.RunnerTrafficMetricsMiddleware = RouteLabelledMetrics
