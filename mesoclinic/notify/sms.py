"""The SMS provider adapter: a Twilio-style HTTP API, called with the standard library.

Sending is `POST {SMS_PROVIDER_URL}/2010-04-01/Accounts/{SMS_ACCOUNT_SID}/Messages.json` with
the form fields To, From, Body (and StatusCallback, the address the provider reports delivery
to), authenticated with HTTP basic auth (the account SID and the auth token). The provider
answers 201 with the message resource as JSON (`sid`, `status`, …); an error answers 4xx or 5xx
with a JSON body holding a numeric `code` and a `message`.

Requests from the provider to us (a patient's reply, a delivery report) are signed as Twilio
documents X-Twilio-Signature: base64 of HMAC-SHA1, keyed with the auth token, over the full URL
the provider called followed by each POST parameter's name and value, sorted by name.

The provider cannot be reached from the test machines; tests/test_notify.py runs a loopback
HTTP server that answers as this documented API does, errors included.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings

TIMEOUT = 15
# Errors that will not get better by trying again: an invalid or unreachable number, and a
# recipient who replied STOP (the provider refuses to send to them: code 21610).
PERMANENT_CODES = frozenset({21211, 21408, 21610, 21612, 21614})
UNSUBSCRIBED = 21610


class SmsError(Exception):
    """The provider refused the message or could not be reached. `permanent` says whether
    trying again could help."""

    def __init__(self, message: str, *, code: int | None = None, permanent: bool = False):
        super().__init__(message)
        self.code = code
        self.permanent = permanent


@dataclass(frozen=True)
class Sent:
    sid: str
    status: str


def configured() -> bool:
    return bool(settings.SMS_PROVIDER_URL and settings.SMS_ACCOUNT_SID and settings.SMS_FROM)


def messages_url() -> str:
    base = settings.SMS_PROVIDER_URL.rstrip("/")
    sid = urllib.parse.quote(settings.SMS_ACCOUNT_SID, safe="")
    return f"{base}/2010-04-01/Accounts/{sid}/Messages.json"


def send(to: str, body: str, *, status_callback: str = "") -> Sent:
    """Hand one text to the provider. Answers its message id and first status, or raises
    SmsError."""
    if not configured():
        raise SmsError("Text messages are not set up (SMS_PROVIDER_URL).", permanent=True)
    fields = {"To": to, "From": settings.SMS_FROM, "Body": body}
    if status_callback:
        fields["StatusCallback"] = status_callback
    credentials = f"{settings.SMS_ACCOUNT_SID}:{settings.SMS_AUTH_TOKEN}".encode()
    request = urllib.request.Request(
        messages_url(),
        data=urllib.parse.urlencode(fields).encode(),
        method="POST",
        headers={
            "Authorization": "Basic " + base64.b64encode(credentials).decode(),
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            payload = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise _error(exc) from None
    except (OSError, ValueError) as exc:  # Unreachable, timed out, or not JSON.
        raise SmsError(f"The text message provider could not be reached: {exc}") from None
    sid = str(payload.get("sid") or "")
    if not sid:
        raise SmsError("The text message provider answered without a message id.")
    return Sent(sid=sid, status=str(payload.get("status") or "queued"))


def _error(exc: urllib.error.HTTPError) -> SmsError:
    try:
        payload = json.loads(exc.read() or b"{}")
    except ValueError:
        payload = {}
    code = payload.get("code") if isinstance(payload, dict) else None
    code = int(code) if isinstance(code, int | str) and str(code).isdigit() else None
    message = (payload.get("message") if isinstance(payload, dict) else None) or exc.reason
    # A 4xx other than a rate limit is the provider saying no; 429 and 5xx may pass.
    permanent = code in PERMANENT_CODES or (400 <= exc.code < 500 and exc.code != 429)
    return SmsError(f"HTTP {exc.code}, error {code}: {message}", code=code, permanent=permanent)


def signature(url: str, params: Mapping[str, str], token: str | None = None) -> str:
    """The X-Twilio-Signature the provider sends with a POST of `params` to `url`."""
    key = (token if token is not None else settings.SMS_AUTH_TOKEN).encode()
    signed = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    return base64.b64encode(hmac.new(key, signed.encode(), hashlib.sha1).digest()).decode()


def verify(url: str, params: Mapping[str, str], header: str) -> bool:
    """Whether a request's X-Twilio-Signature header matches; never without an auth token."""
    if not settings.SMS_AUTH_TOKEN or not header:
        return False
    return hmac.compare_digest(signature(url, params), header)
