"""The one pure ASGI middleware around every request: the key, metrics by status, the last line against an
unexpected exception."""

from __future__ import annotations

import hmac
import logging
import time

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from local_server.api.traffic import Traffic
from local_server.errors import CLIENT_CLOSED_REQUEST, ApiError, ClientGoneError, ErrorType, api_error
from local_server.metrics import Metrics

log = logging.getLogger(__name__)


class GuardMiddleware:
    """Key check, metrics by status, and the last line of defence against unexpected exceptions.

    Pure ASGI rather than `@app.middleware("http")`: it must see a client disconnect as it happens and
    must answer a failure itself (Starlette's `Exception` handlers re-raise after answering, so uvicorn
    logs the traceback a second time and drops the keep-alive connection).
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics, traffic: Traffic, api_key: bytes | None,
                 public: frozenset[str]) -> None:
        self.app, self.metrics, self.traffic, self.api_key, self.public = app, metrics, traffic, api_key, public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None
        self.traffic.in_flight += 1

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if self.api_key is not None and scope["path"] not in self.public and not self._authorized(scope):
                unauthorized = ApiError(ErrorType.UNAUTHORIZED, "missing or wrong API key: send 'Authorization: "
                                        "Bearer <key>' with the server's RERANK_API_KEY",
                                        {"WWW-Authenticate": "Bearer"})
                await unauthorized.response()(scope, receive, send_and_note)
            else:
                await self.app(scope, receive, send_and_note)
        except (ClientGoneError, ClientDisconnect):  # gone before its answer: during the upload, or after
            status = CLIENT_CLOSED_REQUEST
        except Exception as exc:
            log.exception("unexpected error answering %s %s", scope["method"], scope["path"])
            if status is None:
                await api_error(exc).response()(scope, receive, send_and_note)
        finally:
            self.traffic.in_flight -= 1
            self.metrics.observe(_route_label(scope), status or CLIENT_CLOSED_REQUEST, time.perf_counter() - started)

    def _authorized(self, scope: Scope) -> bool:
        header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        scheme, _, token = header.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.api_key or b"")


def _route_label(scope: Scope) -> str:
    """The matched route's path; a refused request's path only when it names a route (bounded labels)."""
    if route := scope.get("route"):
        return getattr(route, "path", "unmatched")
    known = {getattr(route, "path", None) for route in scope["app"].routes}
    return scope["path"] if scope["path"] in known else "unmatched"
