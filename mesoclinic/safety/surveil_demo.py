"""The demo clinic's surveillance alert (called from mesoclinic/demo.py): a cluster of
mycobacterial infections after sessions that used one lot, reported through the same action
as real ones, then one surveillance run, so the manager finds a lot alert on Today.

The events are invented for the demo and claim nothing about any product.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Count

from mesoclinic.accounts.models import Clinic
from mesoclinic.courses.models import Session
from mesoclinic.formulary.models import Lot
from mesoclinic.safety import actions, surveil
from mesoclinic.safety.models import SafetyAlert

VIA = "demo"
MOST_EVENTS = 8  # the cluster grows one infection at a time until the lot's CUSUM signals


def seed(clinic: Clinic, practitioner: Any, now: dt.datetime) -> SafetyAlert | None:
    """Report infections after the most recent sessions of the lot used most in the last 120
    days, one at a time, until that lot's CUSUM signals; then run surveillance for real."""
    since = now - dt.timedelta(days=120)
    lot = (
        Lot.objects.filter(
            product__clinic=clinic,
            recalled=False,
            session_injections__session__performed_at__gte=since,
        )
        .annotate(n=Count("session_injections__session", distinct=True))
        .order_by("-n", "pk")
        .first()
    )
    if lot is None:
        return None
    sessions = list(
        Session.objects.filter(injections__lot=lot, performed_at__lte=now - dt.timedelta(days=21))
        .exclude(adverse_events__isnull=False)
        .distinct()
        .select_related("course__clinic")
        .order_by("-performed_at")[:MOST_EVENTS]
    )
    key = f"lot:{lot.pk}"
    for session in reversed(sessions):
        # Mycobacterial infections appear 1-12 weeks after treatment, a median of about 4
        # (SPEC); the onset here is three weeks after the session, inside that window.
        actions.do_report_adverse_event(
            session,
            kind="mycobacterial_infection",
            ctcae_grade=2,
            onset_at=min(session.performed_at + dt.timedelta(days=21), now),
            actions_taken="Swab sent for culture; patient reviewed in clinic.",
            lots=[lot],
            user=practitioner,
            via=VIA,
        )
        found = surveil.run(clinic, now=now, dry_run=True)
        if any(s.key == key and s.alarm for s in found.signals):
            break
    surveil.run(clinic, now=now, via=VIA, notify=False)
    return SafetyAlert.objects.filter(clinic=clinic, lot=lot).first()
