"""Your sessions and tokens: the signed-in user's live API tokens and calendar address, each
with a button that ends it, and the tablet PIN that takes a tablet back from a patient
(web/kiosk.py)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from mesoclinic.accounts import pins
from mesoclinic.accounts.models import acting
from mesoclinic.api.models import ApiToken, do_revoke_tokens
from mesoclinic.scheduling import feeds
from mesoclinic.web.context import ALL_STAFF, caller
from mesoclinic.web.kiosk import SetPinForm


@login_required
def tokens(request: HttpRequest, pin_form: SetPinForm | None = None) -> HttpResponse:
    user = acting(request.user)
    live = (
        ApiToken.objects.active()
        .filter(user=user)
        .select_related("membership__clinic")
        .order_by("-created_at", "-pk")
    )
    calendar = feeds.live().filter(user=user).select_related("clinic")
    response = render(
        request,
        "web/account_tokens.html",
        {
            "page": "account",
            "tokens": list(live),
            "feeds": list(calendar),
            "idle_minutes": settings.SESSION_IDLE_TIMEOUT_MINUTES,
            "is_staff_member": caller(request).may(ALL_STAFF),
            "pin_form": pin_form or SetPinForm(user),
            "has_pin": pins.has_pin(user),
            "pin_locked": pins.is_locked(user),
        },
        status=400 if pin_form is not None else 200,
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def revoke_token(request: HttpRequest, token_id: int) -> HttpResponse:
    mine = ApiToken.objects.active().filter(pk=token_id, user=acting(request.user))
    if not mine.exists():
        raise Http404("You have no live token with that number.")
    do_revoke_tokens(mine, reason="revoked by its holder", by=request.user, via="web")
    messages.success(request, "The token no longer works.")
    return redirect("web:account_tokens")


@login_required
@require_POST
def revoke_feed(request: HttpRequest, feed_id: int) -> HttpResponse:
    feed = feeds.live().filter(pk=feed_id, user=acting(request.user)).first()
    if feed is None:
        raise Http404("You have no calendar address with that number.")
    feeds.do_revoke_feed(feed, user=request.user, reason="revoked by its holder")
    messages.success(request, "The calendar address no longer works.")
    return redirect("web:account_tokens")


@login_required
@require_POST
def set_pin(request: HttpRequest) -> HttpResponse:
    """Set or change the tablet PIN (staff only), confirmed with the password."""
    member = caller(request).require(ALL_STAFF)
    form = SetPinForm(request.user, request.POST)
    if not form.is_valid():
        return tokens(request, pin_form=form)
    pins.do_set_pin(request.user, form.cleaned_data["pin"], clinic=member.clinic)
    messages.success(request, "Your tablet PIN is set.")
    return redirect("web:account_tokens")
