"""Calendar feeds on the web: the public .ics address a calendar app subscribes to, and the
pages where a practitioner makes their own and the front desk makes a patient's."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from mesoclinic.access import (
    BY_LINK,
    access_patient,
    appointments_for,
    audit_list,
    caller_for_feed,
)
from mesoclinic.accounts.models import acting
from mesoclinic.scheduling import feeds
from mesoclinic.scheduling.models import CalendarFeed
from mesoclinic.web.context import ALL_STAFF, CLINICAL, caller, require


@require_GET
def ics(request: HttpRequest, token: str) -> HttpResponse:
    """The feed itself. No login: the address is the secret, so an unknown or revoked one is
    a plain 404 that says nothing about why."""
    feed = feeds.find(token)
    if feed is None:
        raise Http404("No such calendar.")
    body = feeds.render(feed, host=request.get_host().split(":")[0])
    # The feed names patients: each one it shows is a read, as the feed's holder.
    holder = caller_for_feed(feed)
    now = timezone.now()
    shown = appointments_for(holder, BY_LINK).filter(
        starts_at__gte=now - feeds.PAST, starts_at__lt=now + feeds.AHEAD
    )
    audit_list(holder, "calendar feed", shown.values_list("patient_id", flat=True), feed=feed.pk)
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="visits.ics"'
    response["Cache-Control"] = "private, max-age=300"
    return response


def feed_url(request: HttpRequest, raw: str) -> str:
    return request.build_absolute_uri(reverse("web:calendar_feed", args=[raw]))


# Only a hash of a feed's token is kept, so its address can be shown once: the view that makes
# a feed leaves the address in the browser session for the page it redirects to, which takes
# it out again. Reloading that page shows it no more, as with an API token.
NEW_FEED_KEY = "new_calendar_address"


def _remember_once(request: HttpRequest, feed: CalendarFeed, raw: str) -> None:
    request.session[NEW_FEED_KEY] = {"feed": feed.pk, "url": feed_url(request, raw)}


def _shown_once(request: HttpRequest, feed: CalendarFeed | None) -> str | None:
    stored = request.session.pop(NEW_FEED_KEY, None)
    if feed is None or not isinstance(stored, dict) or stored.get("feed") != feed.pk:
        return None
    url = stored.get("url")
    return url if isinstance(url, str) else None


@login_required
def my_feed(request: HttpRequest) -> HttpResponse:
    """A practitioner's own feed: make one, see its address once, or stop it."""
    found = require(request, CLINICAL)
    user = acting(request.user)
    if request.method == "POST":
        if "revoke" in request.POST:
            for old in CalendarFeed.objects.filter(user=user, revoked_at__isnull=True):
                feeds.do_revoke_feed(old, user=user)
            messages.success(request, "The calendar address no longer works.")
        else:
            made, raw = feeds.do_create_feed(user=user, for_user=user)
            _remember_once(request, made, raw)
            messages.success(request, "New calendar address made; any earlier one stopped working.")
        return redirect("web:my_feed")
    feed = CalendarFeed.objects.filter(
        user=user, clinic=found.clinic, revoked_at__isnull=True
    ).first()
    return render(
        request,
        "web/my_feed.html",
        {"page": "today", "feed": feed, "url": _shown_once(request, feed)},
    )


@login_required
@require_POST
def patient_feed(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = access_patient(caller(request), patient_id, ALL_STAFF)
    if "revoke" in request.POST:
        for feed in CalendarFeed.objects.filter(patient=patient, revoked_at__isnull=True):
            feeds.do_revoke_feed(feed, user=request.user)
        messages.success(request, "The patient's calendar address no longer works.")
    else:
        made, raw = feeds.do_create_feed(user=request.user, patient=patient)
        _remember_once(request, made, raw)
        messages.success(request, "New calendar address made for the patient.")
    return redirect(f"{reverse('web:chart', args=[patient.pk])}#calendar-feed")


def patient_feed_context(request: HttpRequest, patient_id: int) -> dict[str, object]:
    feed = CalendarFeed.objects.filter(patient_id=patient_id, revoked_at__isnull=True).first()
    return {"patient_feed": feed, "patient_feed_url": _shown_once(request, feed)}
