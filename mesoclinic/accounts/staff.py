"""Running a clinic's staff: changing a role, deactivating and reactivating a member, and
renewing or correcting a practitioner's licence. Every change is audited.

A clinic always keeps one active manager: a role change away from manager and a deactivation
both take a lock on the clinic's row first and count its managers under it, so two managers
who demote or deactivate each other at the same moment cannot leave the clinic with none."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.sessions.models import Session
from django.db import transaction
from django.utils import timezone

from mesoclinic.accounts.models import (
    AuditEvent,
    Clinic,
    Membership,
    PractitionerLicence,
    audit,
    membership_ended,
)

Role = Membership.Role


class StaffChangeRefused(Exception):
    """A change to the staff that would break a rule, with the reason in words."""


def _lock_clinic(clinic_id: int) -> Clinic:
    return Clinic.objects.select_for_update().get(pk=clinic_id)


def _other_active_managers(member: Membership) -> bool:
    return (
        Membership.objects.filter(clinic_id=member.clinic_id, role=Role.MANAGER)
        .exclude(pk=member.pk)
        .exists()
    )


def do_change_role(member: Membership, role: str, *, user: Any, via: str = "web") -> bool:
    """Give `member` a new role; answer whether it changed. The last manager stays one."""
    with transaction.atomic():
        _lock_clinic(member.clinic_id)
        fresh = Membership.every.get(pk=member.pk)
        before = fresh.role
        if role == before:
            return False
        if before == Role.MANAGER and fresh.is_active and not _other_active_managers(fresh):
            raise StaffChangeRefused("The clinic needs at least one manager.")
        _save_change(fresh, "role", role, user=user, via=via)
    member.role = role
    return True


def _save_change(fresh: Membership, field: str, value: str, *, user: Any, via: str) -> None:
    """Save one field of a locked membership, audited with its value before and after."""
    before = getattr(fresh, field)
    setattr(fresh, field, value)
    fresh.save(update_fields=[field])
    audit(
        clinic=fresh.clinic,
        user=user,
        action=AuditEvent.Action.UPDATE,
        obj=fresh,
        via=via,
        **{f"{field}_before": before, field: value},
    )


def do_set_photo(member: Membership, photo_url: str, *, user: Any, via: str = "web") -> bool:
    """Set or clear the photo the clinic's public site shows of `member`; answer whether it
    changed. Audited with the address before and after."""
    with transaction.atomic():
        fresh = Membership.every.select_for_update().get(pk=member.pk)
        if photo_url == fresh.photo_url:
            return False
        _save_change(fresh, "photo_url", photo_url, user=user, via=via)
    member.photo_url = photo_url
    return True


def do_deactivate(member: Membership, *, user: Any, via: str = "web") -> Membership:
    """End `member`'s access to the clinic: their pages and API calls there are refused from
    the next request, their API tokens and calendar addresses for it are revoked, and their
    signed-in browser sessions end if this was their only clinic. Refused for oneself and for
    the clinic's last manager."""
    if member.user_id == getattr(user, "pk", None):
        raise StaffChangeRefused("You cannot deactivate yourself.")
    with transaction.atomic():
        _lock_clinic(member.clinic_id)
        fresh = Membership.every.select_related("clinic", "user").get(pk=member.pk)
        if not fresh.is_active:
            raise StaffChangeRefused(f"{fresh.user.display_name} is already deactivated.")
        if fresh.role == Role.MANAGER and not _other_active_managers(fresh):
            raise StaffChangeRefused("The clinic needs at least one manager.")
        fresh.deactivated_at = timezone.now()
        fresh.deactivated_by = user
        fresh.save(update_fields=["deactivated_at", "deactivated_by"])
        audit(
            clinic=fresh.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=fresh,
            via=via,
            deactivated=True,
            member=fresh.user.get_username(),
        )
        membership_ended.send(sender=Membership, membership=fresh)
        ended = 0
        if not Membership.objects.filter(user_id=fresh.user_id).exists():
            ended = end_sessions(fresh.user_id)
        if ended:
            audit(
                clinic=fresh.clinic,
                user=user,
                action=AuditEvent.Action.REVOKE,
                obj=fresh,
                via=via,
                sessions_ended=ended,
            )
    return fresh


def do_reactivate(member: Membership, *, user: Any, via: str = "web") -> Membership:
    """Give a deactivated member their access back, in the role they had. Tokens and calendar
    addresses revoked at the deactivation stay revoked: they make new ones."""
    with transaction.atomic():
        _lock_clinic(member.clinic_id)
        fresh = Membership.every.select_related("clinic", "user").get(pk=member.pk)
        if fresh.is_active:
            raise StaffChangeRefused(f"{fresh.user.display_name} is already active.")
        fresh.deactivated_at = None
        fresh.deactivated_by = None
        fresh.save(update_fields=["deactivated_at", "deactivated_by"])
        audit(
            clinic=fresh.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=fresh,
            via=via,
            deactivated=False,
            member=fresh.user.get_username(),
        )
    return fresh


def end_sessions(user_id: int) -> int:
    """Delete every live browser session signed in as `user_id`; answer how many."""
    mine = [
        s.pk
        for s in Session.objects.filter(expire_date__gt=timezone.now())
        if str(s.get_decoded().get("_auth_user_id")) == str(user_id)
    ]
    Session.objects.filter(pk__in=mine).delete()
    return len(mine)


# Licences.

LICENCE_FIELDS = ("kind", "number", "jurisdiction", "expires_on")
# Optional: the licensing board's lookup page, shown on the clinic's public site.
LOOKUP = "lookup_url"


def _as_detail(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def do_add_licence(
    member: Membership, data: dict[str, Any], *, user: Any, via: str = "web"
) -> PractitionerLicence:
    with transaction.atomic():
        licence = PractitionerLicence.objects.create(
            user=member.user,
            clinic=member.clinic,
            lookup_url=data.get(LOOKUP, ""),
            **{k: data[k] for k in LICENCE_FIELDS},
        )
        audit(
            clinic=member.clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=licence,
            via=via,
            member=member.pk,
            kind=licence.kind,
            number=licence.number,
        )
    return licence


def do_renew_licence(
    licence: PractitionerLicence, data: dict[str, Any], *, user: Any, via: str = "web"
) -> PractitionerLicence:
    """A new licence row with the new number and expiry; the old one stays, pointing to it.
    The new one's warnings start afresh. Refused for a licence already renewed, or a new
    expiry that is not later than the old one."""
    with transaction.atomic():
        old = PractitionerLicence.objects.select_for_update().get(pk=licence.pk)
        if not old.is_current:
            raise StaffChangeRefused("This licence was already renewed.")
        if data["expires_on"] <= old.expires_on:
            raise StaffChangeRefused("A renewal must expire later than the licence it renews.")
        new = PractitionerLicence.objects.create(
            user_id=old.user_id,
            clinic_id=old.clinic_id,
            lookup_url=data.get(LOOKUP, old.lookup_url),
            **{k: data[k] for k in LICENCE_FIELDS},
        )
        old.superseded_by = new
        old.save(update_fields=["superseded_by"])
        audit(
            clinic=new.clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=new,
            via=via,
            renews=old.pk,
            number=new.number,
            expires_on=new.expires_on.isoformat(),
            previous_expires_on=old.expires_on.isoformat(),
        )
    return new


def do_edit_licence(
    licence: PractitionerLicence, data: dict[str, Any], *, user: Any, via: str = "web"
) -> dict[str, Any]:
    """Correct a mistake in a current licence in place; answer what changed, each field with
    its value before and after (also the audit row's detail). A renewed licence is history
    and stays as it was; an expiry may not move before that of the licence it renewed."""
    with transaction.atomic():
        fresh = PractitionerLicence.objects.select_for_update().get(pk=licence.pk)
        if not fresh.is_current:
            raise StaffChangeRefused("A licence that was renewed is kept as it was.")
        previous = PractitionerLicence.objects.filter(superseded_by=fresh).first()
        if previous is not None and data["expires_on"] <= previous.expires_on:
            raise StaffChangeRefused("The expiry must stay later than the licence this renewed.")
        fields = (*LICENCE_FIELDS, LOOKUP) if LOOKUP in data else LICENCE_FIELDS
        changed = {
            k: {"before": _as_detail(getattr(fresh, k)), "after": _as_detail(data[k])}
            for k in fields
            if getattr(fresh, k) != data[k]
        }
        if not changed:
            return {}
        for k in changed:
            setattr(fresh, k, data[k])
        fresh.save(update_fields=list(changed))
        audit(
            clinic=fresh.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=fresh,
            via=via,
            changes=changed,
        )
    return changed
