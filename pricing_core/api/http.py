"""HTTP routes served next to the dashboard by `app.py`'s `st.App` (same port).

`/stripe/webhook` receives Stripe's events; the FastAPI app answers under `/api/v1`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route

from pricing_core.adapters.storage import open_database
from pricing_core.api.routes import api_app
from pricing_core.billing import checkout_events
from pricing_core.billing.webhooks import Route as WebhookRoute
from pricing_core.billing.webhooks import WebhookRejected, handle_webhook
from pricing_core.domain.errors import ConfigurationError
from pricing_core.plans import events as plan_events

log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 1_000_000

# Every Stripe event type the product handles, by area.
WEBHOOK_ROUTES: tuple[WebhookRoute, ...] = checkout_events.ROUTES + plan_events.ROUTES


async def health(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def stripe_webhook(request: Request) -> JSONResponse:
    """POST /stripe/webhook: 200 when processed, a duplicate or an ignored type; 400
    when the signature, timestamp or body is bad (nothing written); 503 when the
    endpoint secret is not configured; 500 when processing failed (nothing
    half-written, Stripe retries)."""

    payload = await request.body()
    if len(payload) > MAX_WEBHOOK_BYTES:
        return JSONResponse({"error": "payload too large"}, status_code=400)
    signature = request.headers.get("stripe-signature")
    try:
        result = await run_in_threadpool(
            lambda: handle_webhook(open_database(), payload, signature, routes=WEBHOOK_ROUTES)
        )
    except WebhookRejected as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    except ConfigurationError as exc:
        return JSONResponse({"error": str(exc)}, status_code=503)
    except Exception:  # logged and recorded on the event; Stripe retries on 500
        log.exception("processing a Stripe webhook failed")
        return JSONResponse({"error": "processing failed; Stripe will retry"}, status_code=500)
    return JSONResponse({"received": True, "event": result.event_id, "status": str(result.reply)})


def routes() -> list[BaseRoute]:
    """Every HTTP route of the product, for `st.App(routes=...)`."""

    return [
        Route("/healthz", health),
        Route("/stripe/webhook", stripe_webhook, methods=["POST"]),
        _DotAllMount("/api/v1", app=api_app()),
    ]


class _DotAllMount(Mount):
    """A Mount whose prefix also matches paths holding (percent-encoded) newlines, so
    the API answers them with its own JSON error instead of a plain-text 404."""

    def __init__(self, path: str, app: Any) -> None:
        super().__init__(path, app=app)
        self.path_regex = re.compile(self.path_regex.pattern, re.DOTALL)
