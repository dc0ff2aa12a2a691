"""A small fake of the Stripe API on loopback HTTP, for the real `stripe` SDK.

Point the SDK at it with `stripe.StripeClient(key, base_addresses={"api": server.url})`
(or `PRICING_STRIPE_API_BASE=server.url`). It implements what this product calls:

- `POST /v1/checkout/sessions` (form-encoded like the SDK sends it; honours
  `Idempotency-Key`: same key + same parameters -> the same session, different
  parameters -> 400 `idempotency_error`), payment and subscription mode;
- `GET /v1/checkout/sessions/:id` with `expand[]=line_items`, `payment_intent`,
  `payment_intent.latest_charge`; `GET /v1/checkout/sessions` (`created[gte]`,
  `payment_intent`, `limit`, `starting_after`, newest first);
  `POST /v1/checkout/sessions/:id/expire`;
- `GET /v1/payment_intents/:id`, `GET /v1/charges/:id`, `GET|POST /v1/refunds`,
  `GET /v1/refunds/:id`, `GET /v1/disputes/:id`, `GET|POST|DELETE /v1/subscriptions/:id`;
- a hosted checkout page, `GET /pay/:session_id`, that pays the session and
  redirects (303) to its `success_url`, like Stripe's hosted page after a payment;
- `GET /receipts/:charge_id`, a receipt page;
- customers and saved cards: `POST /v1/customers`, `GET /v1/customers/:id/payment_methods`
  (a payment-mode session with `customer` and `setup_future_usage` saves the card
  paid with, `card_for_next_payment`; a setup-mode session saves one through a
  SetupIntent, `GET /v1/setup_intents/:id`), `POST /v1/billing_portal/sessions` and
  its page `GET /portal/:id`;
- off-session payments: `POST /v1/payment_intents` (`confirm`, `off_session`) that
  succeed, decline (402 `card_declined`) or need the customer (402
  `authentication_required`) by the saved card's test number (`TEST_CARDS`), and emit
  `payment_intent.succeeded` / `payment_intent.payment_failed` when `webhook_url` is
  set;
- invoices: a paid session with `invoice_creation[enabled]` and every subscription
  get one (`GET /v1/invoices/:id`, `GET /invoices/:id`, `GET /invoices/:id.pdf`).

Tests change the world with Python methods (`pay`, `settle_async`, `refund`,
`dispute`, `tamper`...) and build events with `event(type, obj)`; `sign()` signs a
payload exactly as Stripe does: `t=<ts>,v1=<hex hmac-sha256(secret, "<ts>.<payload>")>`.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

API_KEY = "sk_test_fake_4242"
WEBHOOK_SECRET = "whsec_test_fake_secret"


def sign(payload: str | bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header Stripe would send for `payload` (computed here
    independently of the SDK)."""
    body = payload if isinstance(payload, bytes) else payload.encode()
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def parse_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (`a[b][0][c]=v`) -> nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def lists(node: Any) -> Any:
        if isinstance(node, dict):
            if node and all(k.isdigit() for k in node):
                return [lists(node[k]) for k in sorted(node, key=int)]
            return {k: lists(v) for k, v in node.items()}
        return node

    return lists(root)


# Stripe's test cards by outcome (https://docs.stripe.com/testing): the last four
# digits decide what an off-session payment with the saved card does.
TEST_CARDS = {
    "visa": ("4242", "succeeds"),
    "declined": ("0002", "declines"),
    "authentication_required": ("3184", "requires_action"),
}


class StripeError(Exception):
    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        param: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.param = status, kind, message, param
        self.extra = extra


class FakeStripe:
    """The fake's state and behaviour. Thread-safe; start with `start()` or as a
    context manager."""

    def __init__(self, api_key: str = API_KEY, webhook_secret: str = WEBHOOK_SECRET) -> None:
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.lock = threading.RLock()
        self.sessions: dict[str, dict[str, Any]] = {}
        self.line_items: dict[str, list[dict[str, Any]]] = {}
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.disputes: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        self.payment_methods: dict[str, dict[str, Any]] = {}  # with "customer" and "outcome"
        self.invoices: dict[str, dict[str, Any]] = {}
        self.portal_sessions: dict[str, dict[str, Any]] = {}
        self.setup_intents: dict[str, dict[str, Any]] = {}
        self.card_for_next_payment = "visa"  # a TEST_CARDS key: the card the buyer pays with
        self.idempotency: dict[str, tuple[str, int, dict[str, Any]]] = {}
        self.requests: list[dict[str, Any]] = []  # every API request, for assertions
        self.async_payments = False  # hosted page leaves payment_status "unpaid"
        self.fail_next: list[int] = []  # HTTP statuses to answer the next API calls with
        # when set, `emit` POSTs signed events here, and the hosted page emits
        # checkout.session.completed after a payment (racing the redirect)
        self.webhook_url: str | None = None
        self.webhook_replies: list[int | None] = []
        self._server: ThreadingHTTPServer | None = None
        self._clock = int(time.time())

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeStripe:
        fake = self

        class Handler(_Handler):
            stripe = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _now(self) -> int:
        # strictly increasing "created" so lists have a stable newest-first order
        with self.lock:
            self._clock = max(self._clock + 1, int(time.time()))
            return self._clock

    # ------------------------------------------------------------ checkout sessions

    def create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        mode = params.get("mode")
        if mode not in ("payment", "subscription", "setup"):
            raise StripeError(400, "invalid_request_error", "Missing required param: mode.", "mode")
        if not params.get("success_url"):
            raise StripeError(400, "invalid_request_error", "Missing success_url", "success_url")
        items = params.get("line_items") or []
        if mode != "setup" and not items:
            raise StripeError(400, "invalid_request_error", "Missing line_items", "line_items")
        sid = _new_id("cs_test")
        lines, total, currency = [], 0, None
        for i, item in enumerate(items):
            quantity = int(item.get("quantity", 1))
            if "price_data" in item:
                pd = item["price_data"]
                unit, currency = int(pd["unit_amount"]), pd["currency"].lower()
                name = pd.get("product_data", {}).get("name", "")
                price = {
                    "id": _new_id("price"),
                    "object": "price",
                    "unit_amount": unit,
                    "currency": currency,
                    "product": _new_id("prod"),
                }
            else:  # a Price id (subscription mode); the fake charges 0 unless told
                unit, currency, name = 0, params.get("currency", "usd"), item.get("price", "")
                price = {
                    "id": item.get("price"),
                    "object": "price",
                    "unit_amount": unit,
                    "currency": currency,
                }
            lines.append(
                {
                    "id": f"li_{sid[-12:]}_{i}",
                    "object": "item",
                    "description": name,
                    "quantity": quantity,
                    "currency": currency,
                    "amount_subtotal": unit * quantity,
                    "amount_total": unit * quantity,
                    "price": price,
                }
            )
            total += unit * quantity
        session = {
            "id": sid,
            "object": "checkout.session",
            "mode": mode,
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": total,
            "amount_subtotal": total,
            "currency": currency,
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata", {}),
            "success_url": params["success_url"],
            "cancel_url": params.get("cancel_url"),
            "customer_email": params.get("customer_email"),
            "payment_intent": None,
            "setup_intent": None,
            "subscription": None,
            "customer": params.get("customer"),
            "invoice": None,
            "invoice_creation": params.get("invoice_creation"),
            "subscription_data": params.get("subscription_data"),
            "payment_intent_data": params.get("payment_intent_data"),
            "created": self._now(),
            "expires_at": int(time.time()) + 86400,
            "livemode": False,
            "url": f"{self.url}/pay/{sid}",
        }
        with self.lock:
            self.sessions[sid] = session
            self.line_items[sid] = lines
        return self.session_object(sid)

    def session_object(self, sid: str, expand: list[str] | None = None) -> dict[str, Any]:
        with self.lock:
            if sid not in self.sessions:
                raise StripeError(
                    404, "invalid_request_error", f"No such checkout.session: '{sid}'", "id"
                )
            session = copy.deepcopy(self.sessions[sid])
            for key in ("subscription_data", "payment_intent_data", "invoice_creation"):
                session.pop(key, None)
            for path in expand or []:
                if path == "line_items":
                    session["line_items"] = {
                        "object": "list",
                        "data": copy.deepcopy(self.line_items[sid]),
                        "has_more": False,
                        "url": f"/v1/checkout/sessions/{sid}/line_items",
                    }
                elif path.startswith("payment_intent") and session["payment_intent"]:
                    pi = copy.deepcopy(self.payment_intents[session["payment_intent"]])
                    if path == "payment_intent.latest_charge" and pi.get("latest_charge"):
                        pi["latest_charge"] = copy.deepcopy(self.charges[pi["latest_charge"]])
                    session["payment_intent"] = pi
            return session

    def pay(self, sid: str, *, async_payment: bool | None = None) -> dict[str, Any]:
        """What the hosted page does when the buyer pays: the session completes; it is
        paid at once, or (async payment methods) left unpaid until `settle_async`."""
        with self.lock:
            session = self.sessions[sid]
            if session["status"] != "open":
                return session
            session["status"] = "complete"
            pending = self.async_payments if async_payment is None else async_payment
            if session["mode"] == "subscription":
                self._subscribe(session)
            elif session["mode"] == "setup":
                self._setup(session)
            elif not pending:
                self._charge(session)
            return session

    def settle_async(self, sid: str, *, succeeded: bool = True) -> dict[str, Any]:
        """The delayed payment of a completed session succeeds (paid) or fails."""
        with self.lock:
            session = self.sessions[sid]
            if succeeded:
                self._charge(session)
            else:
                session["payment_status"] = "unpaid"
            return session

    def expire(self, sid: str) -> dict[str, Any]:
        with self.lock:
            session = self.sessions[sid]
            if session["status"] == "open":
                session["status"] = "expired"
            return session

    def tamper(self, sid: str, **fields: Any) -> None:
        """Change a session's fields (e.g. `amount_total`) and its line items'."""
        with self.lock:
            self.sessions[sid].update(fields)
            for line in self.line_items[sid]:
                if "amount_total" in fields:
                    line["amount_total"] = fields["amount_total"]
                if "currency" in fields:
                    line["currency"] = fields["currency"]

    def _charge(self, session: dict[str, Any]) -> None:
        pi_id, ch_id = _new_id("pi"), _new_id("ch")
        metadata = (session.get("payment_intent_data") or {}).get("metadata", {})
        self.charges[ch_id] = {
            "id": ch_id,
            "object": "charge",
            "amount": session["amount_total"],
            "amount_refunded": 0,
            "currency": session["currency"],
            "paid": True,
            "refunded": False,
            "status": "succeeded",
            "payment_intent": pi_id,
            "receipt_url": f"{self.url}/receipts/{ch_id}",
            "created": self._now(),
            "metadata": metadata,
            "disputed": False,
        }
        self.payment_intents[pi_id] = {
            "id": pi_id,
            "object": "payment_intent",
            "amount": session["amount_total"],
            "amount_received": session["amount_total"],
            "currency": session["currency"],
            "status": "succeeded",
            "latest_charge": ch_id,
            "metadata": metadata,
            "created": self._now(),
        }
        session["payment_intent"] = pi_id
        session["payment_status"] = "paid"
        intent_data = session.get("payment_intent_data") or {}
        if session.get("customer") and intent_data.get("setup_future_usage"):
            method = self.attach_card(session["customer"], self.card_for_next_payment)
            self.payment_intents[pi_id]["payment_method"] = method["id"]
        creation = session.get("invoice_creation") or {}
        if str(creation.get("enabled")).lower() == "true":
            metadata = (creation.get("invoice_data") or {}).get("metadata", {})
            invoice = self._invoice(session.get("customer"), session["amount_total"], metadata)
            session["invoice"] = invoice["id"]

    def _setup(self, session: dict[str, Any]) -> None:
        """A setup-mode session completes: a SetupIntent saves the card on the customer."""
        method = self.attach_card(session["customer"], self.card_for_next_payment)
        seti = _new_id("seti")
        self.setup_intents[seti] = {
            "id": seti,
            "object": "setup_intent",
            "status": "succeeded",
            "customer": session["customer"],
            "payment_method": method["id"],
            "usage": "off_session",
            "created": self._now(),
        }
        session.update(setup_intent=seti, payment_status="no_payment_required")

    def _subscribe(self, session: dict[str, Any]) -> None:
        sub_id, cus_id = _new_id("sub"), session.get("customer") or _new_id("cus")
        items = [
            {
                "id": _new_id("si"),
                "object": "subscription_item",
                "price": line["price"],
                "quantity": line["quantity"],
            }
            for line in self.line_items[session["id"]]
        ]
        self.subscriptions[sub_id] = {
            "id": sub_id,
            "object": "subscription",
            "status": "active",
            "customer": cus_id,
            "items": {"object": "list", "data": items, "has_more": False},
            "metadata": (session.get("subscription_data") or {}).get("metadata", {}),
            "created": self._now(),
            "current_period_start": int(time.time()),
            "cancel_at_period_end": False,
        }
        session.update(subscription=sub_id, customer=cus_id, payment_status="paid")
        total = sum(line["amount_total"] for line in self.line_items[session["id"]])
        self._invoice(cus_id, total, {}, subscription=sub_id)

    def update_subscription(self, sub_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/subscriptions/:id: swap an item's Price, merge metadata."""
        with self.lock:
            sub = self.subscriptions.get(sub_id)
            if sub is None:
                raise StripeError(404, "invalid_request_error", f"No such subscription: '{sub_id}'")
            for change in params.get("items") or []:
                for item in sub["items"]["data"]:
                    if item["id"] == change.get("id") and "price" in change:
                        item["price"] = {"id": change["price"], "object": "price", "unit_amount": 0}
            sub["metadata"] = {**sub["metadata"], **(params.get("metadata") or {})}
            return copy.deepcopy(sub)

    def cancel_subscription(self, sub_id: str) -> dict[str, Any]:
        """DELETE /v1/subscriptions/:id: cancel now."""
        with self.lock:
            sub = self.subscriptions.get(sub_id)
            if sub is None:
                raise StripeError(404, "invalid_request_error", f"No such subscription: '{sub_id}'")
            sub.update(status="canceled", canceled_at=self._now())
            return copy.deepcopy(sub)

    # ------------------------------------------------------------ customers, cards, invoices

    def create_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        cus_id = _new_id("cus")
        with self.lock:
            self.customers[cus_id] = {
                "id": cus_id,
                "object": "customer",
                "email": params.get("email"),
                "metadata": params.get("metadata", {}),
                "created": self._now(),
            }
            return copy.deepcopy(self.customers[cus_id])

    def attach_card(self, customer: str, card: str = "visa") -> dict[str, Any]:
        """Save a test card (a `TEST_CARDS` key) on the customer, as Checkout with
        `setup_future_usage` or the portal does."""
        last4, outcome = TEST_CARDS[card]
        pm_id = _new_id("pm")
        with self.lock:
            if customer not in self.customers:
                raise StripeError(404, "invalid_request_error", f"No such customer: '{customer}'")
            self.payment_methods[pm_id] = {
                "id": pm_id,
                "object": "payment_method",
                "type": "card",
                "customer": customer,
                "card": {"brand": "visa", "last4": last4, "exp_month": 12, "exp_year": 2034},
                "created": self._now(),
                "outcome": outcome,
            }
            return self._public_method(pm_id)

    def _public_method(self, pm_id: str) -> dict[str, Any]:
        method = copy.deepcopy(self.payment_methods[pm_id])
        method.pop("outcome")
        return method

    def _invoice(
        self,
        customer: str | None,
        amount: int,
        metadata: dict[str, Any],
        *,
        subscription: str | None = None,
    ) -> dict[str, Any]:
        inv_id = _new_id("in")
        number = f"FAKE-{len(self.invoices) + 1:04d}"
        self.invoices[inv_id] = {
            "id": inv_id,
            "object": "invoice",
            "number": number,
            "customer": customer,
            "subscription": subscription,
            "status": "paid",
            "amount_due": amount,
            "amount_paid": amount,
            "currency": "usd",
            "description": "Subscription" if subscription else "Credit pack",
            "hosted_invoice_url": f"{self.url}/invoices/{inv_id}",
            "invoice_pdf": f"{self.url}/invoices/{inv_id}.pdf",
            "metadata": metadata,
            "created": self._now(),
        }
        return self.invoices[inv_id]

    def create_portal_session(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("customer") not in self.customers:
            raise StripeError(404, "invalid_request_error", "No such customer", "customer")
        bps = _new_id("bps")
        self.portal_sessions[bps] = {
            "id": bps,
            "object": "billing_portal.session",
            "customer": params["customer"],
            "return_url": params.get("return_url"),
            "url": f"{self.url}/portal/{bps}",
        }
        return copy.deepcopy(self.portal_sessions[bps])

    def create_payment_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        """An off-session PaymentIntent, confirmed at once with the saved card: it
        succeeds, or answers 402 as Stripe does (the intent in the error)."""
        pm_id, customer = params.get("payment_method"), params.get("customer")
        with self.lock:
            method = self.payment_methods.get(pm_id or "")
            if method is None or method["customer"] != customer:
                raise StripeError(
                    400,
                    "invalid_request_error",
                    f"No such PaymentMethod: '{pm_id}'",
                    "payment_method",
                )
            pi_id = _new_id("pi")
            intent = {
                "id": pi_id,
                "object": "payment_intent",
                "amount": int(params["amount"]),
                "amount_received": 0,
                "currency": params.get("currency", "usd"),
                "customer": customer,
                "payment_method": pm_id,
                "status": "requires_confirmation",
                "latest_charge": None,
                "metadata": params.get("metadata", {}),
                "created": self._now(),
                "last_payment_error": None,
            }
            self.payment_intents[pi_id] = intent
            outcome = method["outcome"]
            if outcome == "succeeds":
                ch_id = _new_id("ch")
                self.charges[ch_id] = {
                    "id": ch_id,
                    "object": "charge",
                    "amount": intent["amount"],
                    "amount_refunded": 0,
                    "currency": intent["currency"],
                    "paid": True,
                    "refunded": False,
                    "status": "succeeded",
                    "payment_intent": pi_id,
                    "receipt_url": f"{self.url}/receipts/{ch_id}",
                    "created": self._now(),
                    "metadata": intent["metadata"],
                    "disputed": False,
                }
                intent.update(
                    status="succeeded", amount_received=intent["amount"], latest_charge=ch_id
                )
                self._emit_async("payment_intent.succeeded", intent)
                return copy.deepcopy(intent)
            code = "card_declined" if outcome == "declines" else "authentication_required"
            message = (
                "Your card was declined."
                if outcome == "declines"
                else "Your card requires authentication."
            )
            intent["status"] = (
                "requires_payment_method" if outcome == "declines" else "requires_action"
            )
            intent["last_payment_error"] = {"type": "card_error", "code": code, "message": message}
            self._emit_async("payment_intent.payment_failed", intent)
            raise StripeError(
                402, "card_error", message, code=code, payment_intent=copy.deepcopy(intent)
            )

    def _emit_async(self, event_type: str, obj: dict[str, Any]) -> None:
        if self.webhook_url:
            snapshot = copy.deepcopy(obj)
            threading.Thread(target=self.emit, args=(event_type, snapshot), daemon=True).start()

    # ------------------------------------------------------------ refunds, disputes

    def refund(
        self,
        charge_id: str | None = None,
        *,
        payment_intent: str | None = None,
        amount: int | None = None,
        status: str = "succeeded",
    ) -> dict[str, Any]:
        """Refund (part of) a charge; `status` e.g. "pending" or "failed"."""
        with self.lock:
            if charge_id is None:
                if payment_intent not in self.payment_intents:
                    raise StripeError(
                        404, "invalid_request_error", f"No such payment_intent: '{payment_intent}'"
                    )
                charge_id = self.payment_intents[payment_intent]["latest_charge"]
            if charge_id not in self.charges:
                raise StripeError(404, "invalid_request_error", f"No such charge: '{charge_id}'")
            charge = self.charges[charge_id]
            left = charge["amount"] - charge["amount_refunded"]
            amount = left if amount is None else int(amount)
            if amount <= 0 or amount > left:
                raise StripeError(
                    400,
                    "invalid_request_error",
                    f"Refund amount ({amount}) is greater than unrefunded amount ({left})",
                )
            rid = _new_id("re")
            self.refunds[rid] = {
                "id": rid,
                "object": "refund",
                "amount": amount,
                "charge": charge_id,
                "currency": charge["currency"],
                "payment_intent": charge["payment_intent"],
                "status": status,
                "created": self._now(),
                "metadata": {},
            }
            if status in ("succeeded", "pending"):
                charge["amount_refunded"] += amount
                charge["refunded"] = charge["amount_refunded"] == charge["amount"]
            return copy.deepcopy(self.refunds[rid])

    def set_refund_status(self, rid: str, status: str) -> dict[str, Any]:
        with self.lock:
            refund = self.refunds[rid]
            charge = self.charges[refund["charge"]]
            if refund["status"] in ("succeeded", "pending") and status in ("failed", "canceled"):
                charge["amount_refunded"] -= refund["amount"]
                charge["refunded"] = False
            refund["status"] = status
            return copy.deepcopy(refund)

    def dispute(
        self, charge_id: str, *, amount: int | None = None, status: str = "needs_response"
    ) -> dict[str, Any]:
        with self.lock:
            charge = self.charges[charge_id]
            did = _new_id("dp")
            self.disputes[did] = {
                "id": did,
                "object": "dispute",
                "amount": charge["amount"] if amount is None else amount,
                "charge": charge_id,
                "payment_intent": charge["payment_intent"],
                "currency": charge["currency"],
                "status": status,
                "reason": "fraudulent",
                "created": self._now(),
            }
            charge["disputed"] = True
            return copy.deepcopy(self.disputes[did])

    def set_dispute_status(self, did: str, status: str) -> dict[str, Any]:
        with self.lock:
            self.disputes[did]["status"] = status
            return copy.deepcopy(self.disputes[did])

    # ------------------------------------------------------------ events

    def event(
        self, event_type: str, obj: dict[str, Any], *, event_id: str | None = None
    ) -> dict[str, Any]:
        """A Stripe event envelope around `obj` (a snapshot, as Stripe sends it)."""
        return {
            "id": event_id or _new_id("evt"),
            "object": "event",
            "api_version": "2025-01-27.acacia",
            "created": int(time.time()),
            "data": {"object": copy.deepcopy(obj)},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }

    def signed(
        self, event: dict[str, Any], *, timestamp: int | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """(body, headers) for POSTing `event` to a webhook endpoint."""
        body = json.dumps(event, separators=(",", ":"))
        return body.encode(), {
            "Stripe-Signature": sign(body, self.webhook_secret, timestamp),
            "Content-Type": "application/json",
        }

    def emit(self, event_type: str, obj: dict[str, Any]) -> int | None:
        """Build an event and, when `webhook_url` is set, deliver it signed (returns
        the HTTP status)."""
        import urllib.error
        import urllib.request

        event = self.event(event_type, obj)
        if self.webhook_url is None:
            return None
        body, headers = self.signed(event)
        request = urllib.request.Request(
            self.webhook_url, data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        self.webhook_replies.append(status)
        return status

    # ------------------------------------------------------------ HTTP dispatch

    def handle_api(
        self, method: str, path: str, params: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        self.requests.append(
            {
                "method": method,
                "path": path,
                "params": params,
                "idempotency_key": headers.get("idempotency-key"),
            }
        )
        if self.fail_next:
            status = self.fail_next.pop(0)
            raise StripeError(status, "api_error", f"fake failure {status}")
        auth = headers.get("authorization", "")
        if auth != f"Bearer {self.api_key}":
            raise StripeError(401, "invalid_request_error", "Invalid API Key provided")
        key = headers.get("idempotency-key")
        if method == "POST" and key:
            fingerprint = json.dumps([path, params], sort_keys=True)
            with self.lock:
                seen = self.idempotency.get(key)
            if seen is not None:
                if seen[0] != fingerprint:
                    raise StripeError(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with.",
                    )
                return seen[1], seen[2]
            status, body = self._route(method, path, params)
            with self.lock:
                self.idempotency[key] = (fingerprint, status, body)
            return status, body
        return self._route(method, path, params)

    def _route(self, method: str, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        expand = params.get("expand") or []
        parts = path.strip("/").split("/")[1:]  # drop "v1"
        match (method, parts):
            case ("POST", ["checkout", "sessions"]):
                return 200, self.create_session(params)
            case ("GET", ["checkout", "sessions"]):
                return 200, self._list_sessions(params)
            case ("GET", ["checkout", "sessions", sid]):
                return 200, self.session_object(sid, expand)
            case ("GET", ["checkout", "sessions", sid, "line_items"]):
                return 200, self.session_object(sid, ["line_items"])["line_items"]
            case ("POST", ["checkout", "sessions", sid, "expire"]):
                self.expire(sid)
                return 200, self.session_object(sid)
            case ("POST", ["customers"]):
                return 200, self.create_customer(params)
            case ("GET", ["customers", cus, "payment_methods"]):
                with self.lock:
                    data = [
                        self._public_method(m["id"])
                        for m in self.payment_methods.values()
                        if m["customer"] == cus
                    ]
                return 200, self._page(data, params, f"/v1/customers/{cus}/payment_methods")
            case ("POST", ["billing_portal", "sessions"]):
                return 200, self.create_portal_session(params)
            case ("POST", ["payment_intents"]):
                return 200, self.create_payment_intent(params)
            case ("GET", ["setup_intents", seti]):
                return 200, self._get(self.setup_intents, seti, "setup_intent")
            case ("GET", ["invoices", iid]):
                return 200, self._get(self.invoices, iid, "invoice")
            case ("GET", ["payment_intents", pid]):
                return 200, self._get(self.payment_intents, pid, "payment_intent")
            case ("GET", ["charges", cid]):
                return 200, self._get(self.charges, cid, "charge")
            case ("GET", ["refunds"]):
                data = [
                    r
                    for r in self.refunds.values()
                    if params.get("charge") in (None, r["charge"])
                    and params.get("payment_intent") in (None, r["payment_intent"])
                ]
                return 200, self._page(data, params, "/v1/refunds")
            case ("POST", ["refunds"]):
                amount = int(params["amount"]) if "amount" in params else None
                return 200, self.refund(
                    params.get("charge"), payment_intent=params.get("payment_intent"), amount=amount
                )
            case ("GET", ["refunds", rid]):
                return 200, self._get(self.refunds, rid, "refund")
            case ("GET", ["disputes", did]):
                return 200, self._get(self.disputes, did, "dispute")
            case ("GET", ["subscriptions", sub]):
                return 200, self._get(self.subscriptions, sub, "subscription")
            case ("POST", ["subscriptions", sub]):
                return 200, self.update_subscription(sub, params)
            case ("DELETE", ["subscriptions", sub]):
                return 200, self.cancel_subscription(sub)
        raise StripeError(
            404, "invalid_request_error", f"Unrecognized request URL ({method}: {path})"
        )

    def _get(self, store: dict[str, dict[str, Any]], oid: str, kind: str) -> dict[str, Any]:
        with self.lock:
            if oid not in store:
                raise StripeError(404, "invalid_request_error", f"No such {kind}: '{oid}'", "id")
            return copy.deepcopy(store[oid])

    def _list_sessions(self, params: dict[str, Any]) -> dict[str, Any]:
        created = params.get("created") or {}
        with self.lock:
            data = [
                self.session_object(s["id"])
                for s in self.sessions.values()
                if ("gte" not in created or s["created"] >= int(created["gte"]))
                and params.get("payment_intent") in (None, s["payment_intent"])
            ]
        return self._page(data, params, "/v1/checkout/sessions")

    @staticmethod
    def _page(data: list[dict[str, Any]], params: dict[str, Any], url: str) -> dict[str, Any]:
        data = sorted(data, key=lambda o: (o["created"], o["id"]), reverse=True)  # newest first
        if params.get("starting_after"):
            ids = [o["id"] for o in data]
            data = data[ids.index(params["starting_after"]) + 1 :]
        limit = int(params.get("limit", 10))
        return {"object": "list", "data": data[:limit], "has_more": len(data) > limit, "url": url}


class _Handler(BaseHTTPRequestHandler):
    stripe: FakeStripe
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _send(
        self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Request-Id", _new_id("req"))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        pairs = parse_qsl(split.query, keep_blank_values=True)
        if method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            pairs += parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True)
        if split.path.startswith("/pay/"):
            return self._hosted_page(split.path.removeprefix("/pay/"))
        if split.path.startswith(("/portal/", "/invoices/")):
            return self._document(split.path)
        if split.path.startswith("/receipts/"):
            html = f"<html><body><h1>Receipt</h1><p>{split.path[10:]}</p></body></html>"
            return self._send(200, html.encode(), "text/html")
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, body = self.stripe.handle_api(method, split.path, parse_form(pairs), headers)
        except StripeError as exc:
            error = {"type": exc.kind, "message": exc.message, "param": exc.param, **exc.extra}
            status, body = exc.status, {"error": error}
        except (KeyError, ValueError) as exc:
            status, body = (
                400,
                {"error": {"type": "invalid_request_error", "message": f"bad request: {exc}"}},
            )
        self._send(status, json.dumps(body).encode(), "application/json")

    def _document(self, path: str) -> None:
        """A portal session's page (the saved cards) or an invoice's hosted page."""
        kind, oid = path.strip("/").split("/", 1)
        if kind == "portal" and oid in self.stripe.portal_sessions:
            portal = self.stripe.portal_sessions[oid]
            cards = "".join(
                f"<li>{m['card']['brand']} {m['card']['last4']}</li>"
                for m in self.stripe.payment_methods.values()
                if m["customer"] == portal["customer"]
            )
            back = portal["return_url"] or "/"
            html = f"<h1>Payment methods</h1><ul>{cards}</ul><a href='{back}'>Return</a>"
            return self._send(200, html.encode(), "text/html")
        invoice = self.stripe.invoices.get(oid.removesuffix(".pdf"))
        if kind == "invoices" and invoice is not None:
            html = f"<h1>Invoice {invoice['number']}</h1><p>{invoice['amount_paid']}</p>"
            return self._send(200, html.encode(), "text/html")
        return self._send(404, b"not found", "text/plain")

    def _hosted_page(self, sid: str) -> None:
        if sid not in self.stripe.sessions:
            return self._send(404, b"no such checkout session", "text/plain")
        was_open = self.stripe.sessions[sid]["status"] == "open"
        session = self.stripe.pay(sid)
        if was_open and self.stripe.webhook_url and session["mode"] == "payment":
            # like Stripe: the event is sent on its own, racing the buyer's redirect
            snapshot = self.stripe.session_object(sid)
            threading.Thread(
                target=self.stripe.emit, args=("checkout.session.completed", snapshot), daemon=True
            ).start()
        target = session["success_url"].replace("{CHECKOUT_SESSION_ID}", sid)
        self._send(303, b"", "text/plain", {"Location": target})

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")
