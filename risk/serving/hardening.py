"""HTTP hardening of the lookup API: body size limit, security headers, no caching of anything under
/api/, validation errors that echo no input (a typed name or phone) and never fail on odd Unicode."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 16 * 1024  # a search body is {"q": "<= 64 characters"}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI (served from the app, see api.py) sets inline styles on its elements.
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
DOCS_PREFIX = "/api/docs"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class HardeningMiddleware:
    """Pure ASGI (streams stay streams): refuses bodies over MAX_BODY_BYTES with 413, whether announced
    by Content-Length or not, and adds the security headers and, under /api/, Cache-Control: no-store to
    every response, including 401/403/404/413/422."""

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY_BYTES) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _too_large(scope, send, path)
            return
        received = 0
        started = refused = False

        async def limited_receive() -> Message:
            # a streamed body over the limit: answer 413 here and tell the app the client went away
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body and not started:
                    refused = True
                    await _too_large(scope, send, path)
                    return {"type": "http.disconnect"}
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 is already sent
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = _with_security_headers(list(message.get("headers", [])), path)
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except Exception:
            if not refused:
                raise


def _with_security_headers(headers: list[tuple[bytes, bytes]], path: str) -> list[tuple[bytes, bytes]]:
    present = {name.lower() for name, _ in headers}
    extra = dict(SECURITY_HEADERS)
    extra["Content-Security-Policy"] = DOCS_CSP if path.startswith(DOCS_PREFIX) else CSP
    if path.startswith("/api/"):
        headers = [(n, v) for n, v in headers if n.lower() != b"cache-control"]
        present.discard(b"cache-control")
        extra["Cache-Control"] = "no-store"
    for name, value in extra.items():
        if name.lower().encode() not in present:
            headers.append((name.lower().encode(), value.encode()))
    return headers


async def _too_large(scope: Scope, send: Send, path: str) -> None:
    body = b'{"detail":"request body too large"}'
    headers = _with_security_headers(
        [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())], path
    )
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    """Where and what, never the value sent (it may be a name, a phone, or text that cannot be encoded)."""
    clean = []
    for error in errors:
        location = [
            part if isinstance(part, int) else str(part).encode("utf-8", "replace").decode()
            for part in error.get("loc", ())
        ]
        clean.append(
            {
                "loc": location,
                "msg": str(error.get("msg", "")).encode("utf-8", "replace").decode(),
                "type": str(error.get("type", "")),
            }
        )
    return clean


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _clean_errors(exc.errors())}, status_code=422)

    app.add_middleware(HardeningMiddleware)
