"""Licences that expire soon: the warnings on Today, and the emails 60, 30 and 7 days before.

1. `do_plan_warnings` creates, for each current licence of an active member, the warning of
   the nearest threshold it has reached (a licence entered 20 days before it expires gets the
   30-day one, not also the 60-day one). The unique constraint on (licence, threshold) and
   `ignore_conflicts` make planning twice, or by two workers at once, create nothing more.
2. `send_due` claims due warnings through lib/outbox.py (the reminders' claim, lease and
   retry) and `deliver` sends each one to the clinic's managers and the practitioner, asking
   again right before sending whether it still applies (renewed, corrected, deactivated).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.utils import timezone

from mesoclinic.accounts.models import Clinic, LicenceWarning, Membership, PractitionerLicence
from mesoclinic.lib.outbox import Outbox

THRESHOLDS = (60, 30, 7)  # days before a licence expires
BATCH = 10
LEASE = dt.timedelta(minutes=10)
MAX_ATTEMPTS = 5
Status = LicenceWarning.Status
OUTBOX = Outbox(LicenceWarning, lease=LEASE, max_attempts=MAX_ATTEMPTS)


def threshold_for(days_left: int) -> int | None:
    """The smallest threshold `days_left` has reached, or None when it is further off (or the
    licence has already expired)."""
    if days_left < 0:
        return None
    reached = [t for t in THRESHOLDS if days_left <= t]
    return min(reached) if reached else None


def local_today(clinic: Clinic, now: dt.datetime | None = None) -> dt.date:
    return (now or timezone.now()).astimezone(clinic.tz).date()


def _current(
    clinic_ids: list[int] | None = None,
    *,
    expiring_by: dt.date | None = None,
    user_id: int | None = None,
) -> list[tuple[PractitionerLicence, int]]:
    """Current licences (not renewed) of active members, with their user and clinic, each
    with the id of its holder's membership; only those expiring by `expiring_by` and held by
    `user_id` when given, chosen by the database rather than after loading every licence."""
    active = Membership.objects.values_list("clinic_id", "user_id", "pk")
    licences = PractitionerLicence.objects.filter(superseded_by__isnull=True).select_related(
        "user", "clinic"
    )
    if expiring_by is not None:
        licences = licences.filter(expires_on__lte=expiring_by)
    if user_id is not None:
        licences = licences.filter(user_id=user_id)
        active = active.filter(user_id=user_id)
    if clinic_ids is not None:
        licences = licences.filter(clinic_id__in=clinic_ids)
        active = active.filter(clinic_id__in=clinic_ids)
    members = {(clinic_id, user_id): pk for clinic_id, user_id, pk in active}
    return [
        (lic, members[(lic.clinic_id, lic.user_id)])
        for lic in licences
        if (lic.clinic_id, lic.user_id) in members
    ]


# On Today.


@dataclass(frozen=True)
class ExpiringLicence:
    licence: PractitionerLicence
    member_id: int
    days_left: int

    @property
    def expired(self) -> bool:
        return self.days_left < 0

    @property
    def urgent(self) -> bool:
        return self.days_left <= THRESHOLDS[-1]


def warnings_for(member: Membership, today: dt.date) -> list[ExpiringLicence]:
    """What Today shows `member`: for a manager, every current licence in the clinic that has
    expired or expires within the first threshold; for anyone else, only their own. One query
    for the licences and one for the active members."""
    horizon = today + dt.timedelta(days=THRESHOLDS[0])
    own = None if member.role == Membership.Role.MANAGER else member.user_id
    found = _current([member.clinic_id], expiring_by=horizon, user_id=own)
    found.sort(key=lambda pair: (pair[0].expires_on, pair[0].user.display_name))
    return [ExpiringLicence(lic, m, (lic.expires_on - today).days) for lic, m in found]


# By email.


def do_plan_warnings(now: dt.datetime | None = None) -> int:
    """Create the warnings that have come due; answer how many rows this call added."""
    now = now or timezone.now()
    rows = []
    for licence, _member in _current():
        threshold = threshold_for((licence.expires_on - local_today(licence.clinic, now)).days)
        if threshold is not None:
            rows.append(
                LicenceWarning(
                    clinic_id=licence.clinic_id,
                    licence=licence,
                    threshold=threshold,
                    next_attempt_at=now,
                )
            )
    have = set(
        LicenceWarning.objects.filter(licence__in=[r.licence for r in rows]).values_list(
            "licence_id", "threshold"
        )
    )
    new = [r for r in rows if (r.licence.pk, r.threshold) not in have]
    LicenceWarning.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


def recipients(licence: PractitionerLicence) -> list[str]:
    """The emails of the clinic's active managers and of the practitioner, each once."""
    managers = Membership.objects.filter(
        clinic_id=licence.clinic_id, role=Membership.Role.MANAGER
    ).values_list("user__email", flat=True)
    found = [*managers, licence.user.email]
    return sorted({e.strip().lower(): e.strip() for e in found if e and e.strip()}.values())


def skip_reason(warning: LicenceWarning, now: dt.datetime) -> str | None:
    licence = warning.licence
    if not licence.is_current:
        return "the licence was renewed"
    if not Membership.objects.filter(clinic_id=licence.clinic_id, user_id=licence.user_id).exists():
        return "the member was deactivated"
    days_left = (licence.expires_on - local_today(licence.clinic, now)).days
    if days_left < 0:
        return "the licence has expired"
    if days_left > warning.threshold:
        return "the expiry date was corrected to a later one"
    if not recipients(licence):
        return "nobody to tell has an email address"
    return None


def message(warning: LicenceWarning, to: list[str], today: dt.date) -> EmailMessage:
    licence = warning.licence
    days_left = (licence.expires_on - today).days
    context = {
        "licence": licence,
        "name": licence.user.display_name,
        "clinic": licence.clinic,
        "days_left": days_left,
    }
    subject = (
        f"{licence.user.display_name}'s licence expires on "
        f"{licence.expires_on:%-d %B %Y}, in {days_left} day{'s' if days_left != 1 else ''}"
    )
    return EmailMessage(
        subject, render_to_string("web/staff/licence_warning_email.txt", context), None, to
    )


@dataclass(frozen=True)
class Outcome:
    """What happened to one claimed warning; the worker logs one line of it."""

    warning: int
    licence: int
    threshold: int
    status: str
    detail: str = ""

    def __str__(self) -> str:
        detail = f": {self.detail}" if self.detail else ""
        return (
            f"licence warning {self.warning} ({self.threshold} days, licence {self.licence}) "
            f"{self.status}{detail}"
        )


def deliver(warning: LicenceWarning) -> Outcome:
    fresh = (
        LicenceWarning.objects.select_related("licence__user", "licence__clinic")
        .filter(pk=warning.pk)
        .first()
    )
    if fresh is None:  # The licence was deleted, and its warnings with it.
        return Outcome(warning.pk, warning.licence_id, warning.threshold, "gone")
    now = timezone.now()
    to = recipients(fresh.licence)
    today = local_today(fresh.licence.clinic, now)
    status, detail = OUTBOX.send(
        warning,
        skip_reason=skip_reason(fresh, now),
        to=", ".join(to),
        message=lambda: message(fresh, to, today),
    )
    return Outcome(warning.pk, warning.licence_id, warning.threshold, status, detail)


def send_due(
    worker: str,
    *,
    limit: int = BATCH,
    report: Callable[[Outcome], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> list[Outcome]:
    """Claim and deliver due warnings until none is left (or `stop()`)."""
    return OUTBOX.drain(worker, deliver, limit=limit, report=report, stop=stop)
