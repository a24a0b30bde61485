"""A server on loopback that answers as Stripe's documented API does, for the parts mesoclinic
uses, because Stripe cannot be reached from the test machines:

- `POST /v1/checkout/sessions` and `GET /v1/checkout/sessions/{id}` (form-encoded parameters,
  a Bearer secret key, JSON answers with Stripe's object shapes and error envelope);
- `POST /v1/refunds`, refusing more than is left of the PaymentIntent;
- a stand-in for Stripe's hosted payment page at the session's `url`: paying there completes
  the session, posts a `checkout.session.completed` event to the webhook address, signed as
  Stripe signs (`Stripe-Signature: t=…,v1=HMAC-SHA256(secret, "t.payload")`), and redirects to
  the session's `success_url`.

Everything it was asked is kept in `requests`, and `deliver` posts any event again (a replay)."""

from __future__ import annotations

import hashlib
import hmac
import html
import itertools
import json
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}_test_{next(_ids):06d}"


def sign(payload: bytes, secret: str, at: int | None = None) -> str:
    """A Stripe-Signature header for `payload`."""
    t = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


@dataclass
class FakeStripe:
    secret_key: str = "sk_test_mesoclinic"
    webhook_secret: str = "whsec_mesoclinic"
    webhook_url: str = ""
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    webhook_answers: list[int] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeStripe:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # What the test drives.

    def pay(self, session_id: str) -> int:
        """Pay a session as the patient would on the hosted page; the webhook's HTTP status."""
        session = self.sessions[session_id]
        session.update(
            status="complete", payment_status="paid", payment_intent=_id("pi"), charged=True
        )
        return self.deliver(self.event("checkout.session.completed", session))

    def event(self, type_: str, obj: dict[str, Any]) -> str:
        public = {k: v for k, v in obj.items() if k != "charged"}
        event_id = _id("evt")
        self.events[event_id] = json.dumps(
            {
                "id": event_id,
                "object": "event",
                "api_version": "2025-10-29.clover",
                "created": int(time.time()),
                "livemode": False,
                "type": type_,
                "data": {"object": public},
            }
        ).encode()
        return event_id

    def deliver(self, event_id: str, signature: str | None = None) -> int:
        """Post an event to the webhook address, signed unless `signature` is given."""
        payload = self.events[event_id]
        request = urllib.request.Request(
            self.webhook_url,
            data=payload,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Stripe-Signature": signature or sign(payload, self.webhook_secret),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status = int(answer.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
        self.webhook_answers.append(status)
        return status

    # The API.

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length).decode() if length else ""
        params = dict(parse_qsl(body, keep_blank_values=True))
        path = h.path.split("?")[0]
        self.requests.append((method, path, params))
        if path.startswith("/pay/"):
            return self._hosted_page(h, method, path.removeprefix("/pay/"))
        if h.headers.get("Authorization") != f"Bearer {self.secret_key}":
            return self._json(
                h,
                401,
                {
                    "error": {
                        "message": "Invalid API Key provided: sk_test_***",
                        "type": "invalid_request_error",
                    }
                },
            )
        if method == "POST" and path == "/v1/checkout/sessions":
            return self._json(h, 200, self._create_session(params))
        if method == "GET" and path.startswith("/v1/checkout/sessions/"):
            found = self.sessions.get(path.rsplit("/", 1)[1])
            if found is None:
                return self._missing(h, "checkout.session")
            return self._json(h, 200, {k: v for k, v in found.items() if k != "charged"})
        if method == "POST" and path == "/v1/refunds":
            return self._refund(h, params)
        return self._missing(h, "resource")

    def _create_session(self, params: dict[str, str]) -> dict[str, Any]:
        session_id = _id("cs")
        amount = int(params["line_items[0][price_data][unit_amount]"])
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": params.get("mode", "payment"),
            "amount_total": amount,
            "currency": params["line_items[0][price_data][currency]"],
            "client_reference_id": params.get("client_reference_id"),
            "customer_email": params.get("customer_email"),
            "metadata": {
                k[len("metadata[") : -1]: v for k, v in params.items() if k.startswith("metadata[")
            },
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": params["success_url"],
            "cancel_url": params["cancel_url"],
            "url": f"{self.url}/pay/{session_id}",
            "name": params.get("line_items[0][price_data][product_data][name]", ""),
        }
        self.sessions[session_id] = session
        return session

    def _refund(self, h: BaseHTTPRequestHandler, params: dict[str, str]) -> None:
        intent = params.get("payment_intent", "")
        session = next(
            (s for s in self.sessions.values() if s.get("payment_intent") == intent), None
        )
        if session is None:
            return self._missing(h, "payment_intent")
        done = sum(r["amount"] for r in self.refunds.values() if r["payment_intent"] == intent)
        amount = int(params.get("amount") or session["amount_total"] - done)
        if amount > session["amount_total"] - done:
            return self._json(
                h,
                400,
                {
                    "error": {
                        "code": "amount_too_large",
                        "message": f"Refund amount ({amount}) is greater than unrefunded amount "
                        f"on charge ({session['amount_total'] - done})",
                        "param": "amount",
                        "type": "invalid_request_error",
                    }
                },
            )
        refund = {
            "id": _id("re"),
            "object": "refund",
            "amount": amount,
            "currency": session["currency"],
            "payment_intent": intent,
            "status": "succeeded",
        }
        self.refunds[refund["id"]] = refund
        return self._json(h, 200, refund)

    def _hosted_page(self, h: BaseHTTPRequestHandler, method: str, session_id: str) -> None:
        session = self.sessions.get(session_id)
        if session is None:
            return self._missing(h, "checkout.session")
        if method == "POST":
            self.pay(session_id)
            target = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id)
            h.send_response(303)
            h.send_header("Location", target)
            h.end_headers()
            return None
        minor = session["amount_total"]
        page = (
            "<!doctype html><html lang='en'><head><title>Pay</title></head><body><main>"
            f"<h1>{html.escape(session['name'])}</h1>"
            f"<p>Amount: {minor} {session['currency'].upper()} (in minor units)</p>"
            "<form method='post'><label>Card number <input name='card' "
            "value='4242 4242 4242 4242'></label> <button type='submit'>Pay</button></form>"
            "</main></body></html>"
        ).encode()
        h.send_response(200)
        h.send_header("Content-Type", "text/html; charset=utf-8")
        h.send_header("Content-Length", str(len(page)))
        h.end_headers()
        h.wfile.write(page)
        return None

    def _missing(self, h: BaseHTTPRequestHandler, what: str) -> None:
        return self._json(
            h,
            404,
            {
                "error": {
                    "code": "resource_missing",
                    "message": f"No such {what}",
                    "type": "invalid_request_error",
                }
            },
        )

    def _json(self, h: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Request-Id", _id("req"))
        h.end_headers()
        h.wfile.write(data)
