"""HTTP routes served next to the dashboard by `app.py`'s `st.App` (same port).

`/stripe/webhook` receives Stripe's events; the FastAPI app answers under `/api/v1`, and
the source systems' paths (`api.compat`) under the rest of `/api`.
"""

from __future__ import annotations

import gc
import html
import logging
import re
from typing import Any

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import BaseRoute, Mount, Route

from pricing_core.adapters.counters import Counter, count_event
from pricing_core.adapters.storage import open_database
from pricing_core.api.compat import compat_app
from pricing_core.api.routes import api_app
from pricing_core.billing import checkout_events
from pricing_core.billing import invoices as invoice_events
from pricing_core.billing import topups as topup_events
from pricing_core.billing.webhooks import Route as WebhookRoute
from pricing_core.billing.webhooks import WebhookRejected, handle_webhook
from pricing_core.config import get_settings
from pricing_core.domain.errors import ConfigurationError, PricingError
from pricing_core.notify.preferences import unsubscribe
from pricing_core.plans import events as plan_events
from pricing_core.safety import install_log_redaction, load_auth_section, secret_values

log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 1_000_000

# Every Stripe event type the product handles, by area.
WEBHOOK_ROUTES: tuple[WebhookRoute, ...] = (
    checkout_events.ROUTES + plan_events.ROUTES + topup_events.ROUTES + invoice_events.ROUTES
)


async def health(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


class PayloadTooLarge(Exception):
    """The body is over MAX_WEBHOOK_BYTES (by its Content-Length or as it streams)."""


async def _bounded_body(request: Request, limit: int) -> bytes:
    """The request body, refused before it is buffered when it is over `limit` bytes.

    Raises: PayloadTooLarge (stops reading at the first chunk past the limit)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def _failed(engine: Engine, status: int, reason: str) -> JSONResponse:
    """Count a refused or failed delivery (the Integrity page) and answer it."""
    await run_in_threadpool(
        count_event, engine, Counter.WEBHOOK_FAILED, detail=f"{status} {reason}"
    )
    return JSONResponse({"error": reason}, status_code=status)


async def stripe_webhook(request: Request) -> JSONResponse:
    """POST /stripe/webhook: 200 when processed, a duplicate or an ignored type; 413
    when the body is over MAX_WEBHOOK_BYTES (refused before it is read whole); 400
    when the signature, timestamp or body is bad (nothing written); 503 when the
    endpoint secret is not configured; 500 when processing failed (nothing
    half-written, Stripe retries). Every answer but 200 counts as a webhook failure."""
    try:
        engine = await run_in_threadpool(open_database)  # migrates on first use
    except ConfigurationError as exc:  # nowhere to count it
        return JSONResponse({"error": str(exc)}, status_code=503)
    try:
        payload = await _bounded_body(request, MAX_WEBHOOK_BYTES)
    except PayloadTooLarge:
        return await _failed(engine, 413, f"payload over {MAX_WEBHOOK_BYTES} bytes")
    signature = request.headers.get("stripe-signature")
    try:
        result = await run_in_threadpool(
            lambda: handle_webhook(engine, payload, signature, routes=WEBHOOK_ROUTES)
        )
    except WebhookRejected as exc:
        return await _failed(engine, 400, str(exc))
    except ConfigurationError as exc:
        return await _failed(engine, 503, str(exc))
    except Exception:  # logged and recorded on the event; Stripe retries on 500
        log.exception("processing a Stripe webhook failed")
        return await _failed(engine, 500, "processing failed; Stripe will retry")
    return JSONResponse({"received": True, "event": result.event_id, "status": str(result.reply)})


async def unsubscribe_route(request: Request) -> HTMLResponse:
    """GET /unsubscribe?token=...: an email's one-click unsubscribe link (signed,
    expiring); 400 with a plain explanation for a bad or expired link."""
    engine = await run_in_threadpool(open_database)
    try:
        _, kind = await run_in_threadpool(
            unsubscribe, engine, request.query_params.get("token", "")
        )
    except PricingError as exc:
        return HTMLResponse(f"<p>{html.escape(str(exc))}.</p>", status_code=400)
    page = f"{get_settings().public_url.rstrip('/')}/notifications"
    return HTMLResponse(
        f"<p>You will no longer get {html.escape(kind.replace('_', ' '))} emails. "
        f'Change this any time on the <a href="{html.escape(page)}">Notifications</a> page.</p>'
    )


def routes() -> list[BaseRoute]:
    """Every HTTP route of the product, for `st.App(routes=...)`."""

    return [
        Route("/healthz", health),
        Route("/stripe/webhook", stripe_webhook, methods=["POST"]),
        Route("/unsubscribe", unsubscribe_route),
        _DotAllMount("/api/v1", app=api_app()),
        _DotAllMount("/api", app=compat_app()),  # after /api/v1, which it would shadow
    ]


def asgi_app() -> Starlette:
    """Every route as one ASGI app, for `pricing-core api serve` (uvicorn calls this in
    each worker process, so each redacts the configured secrets from its own logs)."""
    install_log_redaction(secret_values(get_settings(), load_auth_section()))
    app = Starlette(routes=routes())
    # what start-up loaded (modules, the price data) is never garbage: out of every
    # full collection, which scanned it for 80 ms a time (bench B3)
    gc.freeze()
    return app


class _DotAllMount(Mount):
    """A Mount whose prefix also matches paths holding (percent-encoded) newlines, so
    the API answers them with its own JSON error instead of a plain-text 404."""

    def __init__(self, path: str, app: Any) -> None:
        super().__init__(path, app=app)
        self.path_regex = re.compile(self.path_regex.pattern, re.DOTALL)
