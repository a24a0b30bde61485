"""How a patient gets into the portal: an invitation from the chart, or registering themself
with their email address verified. Each is a `do_*` function run in a transaction that writes
an audit row on the patient's chart; the email goes out after the transaction commits, through
Django's email framework.

1. `do_invite_patient(patient, user=...)`: staff give a patient with an email address a login
   (a new account named by that address) and send them a sign-in link.
2. `do_request_registration(clinic, ...)`: someone on the public page asks for an account.
   The same answer is shown whatever the address is; the email says what happens next (a
   verification link, or "you already have an account: sign in").
3. `do_send_sign_in_link(email)`: a patient without a password asks for a new link.
4. `do_use_link(token)`: the link's one use. An invitation signs its patient in; a
   registration's verification links a new account to the clinic's record of the patient when
   the name, date of birth and email all agree with exactly one record that has no login yet,
   and otherwise creates a new patient record (marked as registered online in its history).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, Clinic, User, audit
from mesoclinic.patients import normal
from mesoclinic.patients.models import Patient, PatientChange
from mesoclinic.portal.models import PortalLink, token_hash


class InviteError(ValueError):
    """Why a patient cannot be invited, in words for the staff member who asked."""


@dataclass(frozen=True)
class Used:
    """What a link did: the account it signed in, and the patient that account is."""

    user: User
    patient: Patient
    kind: str


def link_url(token: str) -> str:
    return f"{settings.SITE_URL.rstrip('/')}{reverse('portal:use_link', args=[token])}"


def _new_link(
    clinic: Clinic,
    kind: str,
    email: str,
    hours: int,
    *,
    patient: Patient | None = None,
    details: dict[str, str] | None = None,
    user: User | None = None,
) -> str:
    """Store a link and answer its token (only its hash is kept)."""
    token = secrets.token_urlsafe(32)
    PortalLink.objects.create(
        clinic=clinic,
        kind=kind,
        token_hash=token_hash(token),
        patient=patient,
        email=email,
        details=details or {},
        created_by=user,
        expires_at=timezone.now() + dt.timedelta(hours=hours),
    )
    return token


def username_for(email: str) -> str:
    """A patient signs in with their email address: it is their username, in lower case."""
    return email.strip().lower()


def account_for_email(email: str) -> User | None:
    name = username_for(email)
    return User.objects.filter(username__iexact=name).first() or (
        User.objects.filter(email__iexact=name).first()
    )


def _send(to: str, subject: str, template: str, context: dict[str, object]) -> None:
    """Plain text only, and no health details: the address may be read by someone else."""
    body = render_to_string(template, context)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [to])


def do_invite_patient(patient: Patient, *, user: User) -> PortalLink:
    """Give `patient` a login named by their email address (or keep the one they have) and
    email them a single-use sign-in link. Refused, with the reason, when the patient has no
    email address, or the address already signs in to someone else's account."""
    clinic = patient.clinic
    if not patient.email:
        raise InviteError("Add the patient's email address first: the invitation is sent there.")
    with transaction.atomic():
        patient = Patient.objects.select_for_update().select_related("clinic").get(pk=patient.pk)
        account = patient.user
        if account is None:
            existing = account_for_email(patient.email)
            if existing is not None:
                raise InviteError(
                    "This email address already signs in to another account, so it cannot be "
                    "used for this patient's login. Check the address with the patient."
                )
            account = User(
                username=username_for(patient.email),
                email=patient.email,
                first_name=patient.first_name[:150],
                last_name=patient.last_name[:150],
            )
            account.set_unusable_password()
            try:
                with transaction.atomic():
                    account.save()
            except IntegrityError as exc:
                raise InviteError(
                    "This email address already signs in to another account, so it cannot be "
                    "used for this patient's login. Check the address with the patient."
                ) from exc
            patient.user = account
            patient.save(update_fields=["user"])
        elif account.memberships.exists():
            # A staff account is never a patient's login.
            raise InviteError("This patient's login is a staff account; it cannot be invited.")
        elif not account.is_active:
            raise InviteError("This patient's login has been deactivated.")
        token = _new_link(
            clinic,
            PortalLink.Kind.INVITE,
            patient.email,
            settings.PORTAL_INVITE_HOURS,
            patient=patient,
            user=user,
        )
        link = PortalLink.objects.get(token_hash=token_hash(token))
        audit(
            clinic=clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=link,
            patient_id=patient.pk,
            via="web",
            portal="invited",
        )
    _send(
        patient.email,
        f"Your sign-in link for {clinic.name}",
        "portal/email_invite.txt",
        {
            "clinic": clinic,
            "patient": patient,
            "url": link_url(token),
            "hours": settings.PORTAL_INVITE_HOURS,
        },
    )
    return link


def do_request_registration(
    clinic: Clinic, *, first_name: str, last_name: str, date_of_birth: dt.date, email: str
) -> None:
    """Email a verification link to `email`, or, when the address already has an account,
    a note saying so with the way to sign in. The caller shows the same page either way, so
    the page never tells anyone whether an address is known."""
    login_url = f"{settings.SITE_URL.rstrip('/')}{reverse('portal:login')}"
    if account_for_email(email) is not None:
        _send(
            email,
            f"Your account at {clinic.name}",
            "portal/email_known.txt",
            {"clinic": clinic, "login_url": login_url},
        )
        return
    with transaction.atomic():
        token = _new_link(
            clinic,
            PortalLink.Kind.REGISTER,
            email,
            settings.PORTAL_VERIFY_HOURS,
            details={
                "first_name": first_name,
                "last_name": last_name,
                "date_of_birth": date_of_birth.isoformat(),
            },
        )
    _send(
        email,
        f"Confirm your email address for {clinic.name}",
        "portal/email_verify.txt",
        {"clinic": clinic, "url": link_url(token), "hours": settings.PORTAL_VERIFY_HOURS},
    )


def do_send_sign_in_link(email: str) -> None:
    """Email a single-use sign-in link to the patient whose login this address is; say
    nothing (and send nothing) for any other address, staff's included. The page that asks
    shows the same answer either way."""
    account = User.objects.filter(username__iexact=username_for(email), is_active=True).first()
    patient = (
        Patient.objects.select_related("clinic").filter(user=account).first()
        if account is not None and not account.memberships.exists()
        else None
    )
    if patient is None:
        return
    with transaction.atomic():
        token = _new_link(
            patient.clinic,
            PortalLink.Kind.SIGN_IN,
            account.email or email,  # type: ignore[union-attr]
            settings.PORTAL_VERIFY_HOURS,
            patient=patient,
        )
    _send(
        account.email or email,  # type: ignore[union-attr]
        f"Your sign-in link for {patient.clinic.name}",
        "portal/email_sign_in.txt",
        {
            "clinic": patient.clinic,
            "url": link_url(token),
            "hours": settings.PORTAL_VERIFY_HOURS,
        },
    )


def find_link(token: str) -> PortalLink | None:
    """The open link a token names, or None (unknown, used or expired)."""
    found = (
        PortalLink.objects.select_related("clinic", "patient__user")
        .filter(token_hash=token_hash(token))
        .first()
    )
    return found if found is not None and found.is_open() else None


def do_use_link(token: str) -> Used | None:
    """Use a link once; answer whom it signs in, or None when it is unknown, used, expired,
    or can no longer be honoured (the address was taken by another account meanwhile)."""
    now = timezone.now()
    with transaction.atomic():
        link = find_link(token)
        if link is None:
            return None
        # The one use: only the first of two racing clicks matches a row still unused.
        if not PortalLink.objects.filter(pk=link.pk, used_at__isnull=True).update(used_at=now):
            return None
        if link.kind in (PortalLink.Kind.INVITE, PortalLink.Kind.SIGN_IN):
            patient = link.patient
            assert patient is not None
            account = patient.user
            if account is None or not account.is_active or account.memberships.exists():
                transaction.set_rollback(True)
                return None
            audit(
                clinic=link.clinic,
                user=account,
                action=AuditEvent.Action.UPDATE,
                obj=link,
                patient_id=patient.pk,
                via="web",
                portal="invitation used" if link.kind == PortalLink.Kind.INVITE else "link used",
            )
            return Used(user=account, patient=patient, kind=link.kind)
        return _verify_registration(link)


def _verify_registration(link: PortalLink) -> Used | None:
    details = link.details
    email = link.email
    if account_for_email(email) is not None:
        transaction.set_rollback(True)
        return None
    born = dt.date.fromisoformat(details["date_of_birth"])
    first, last = details["first_name"], details["last_name"]
    matches = list(
        Patient.objects.select_for_update()
        .filter(
            clinic=link.clinic,
            merged_into__isnull=True,
            user__isnull=True,
            date_of_birth=born,
            email__iexact=email,
            search_key=normal.search_key(first, last),
        )
        .order_by("pk")[:2]
    )
    account = User(
        username=username_for(email), email=email, first_name=first[:150], last_name=last[:150]
    )
    account.set_unusable_password()
    try:
        with transaction.atomic():
            account.save()
    except IntegrityError:
        transaction.set_rollback(True)
        return None
    matched = len(matches) == 1
    if matched:
        patient = matches[0]
        patient.user = account
        patient.save(update_fields=["user"])
    else:
        patient = Patient(
            clinic=link.clinic,
            first_name=first,
            last_name=last,
            date_of_birth=born,
            email=email,
            user=account,
        )
        patient.save()
        # The record's history says where it came from, for staff to check at the first
        # visit (the details were typed by the patient and not yet seen by the clinic).
        PatientChange.objects.create(
            patient=patient,
            kind=PatientChange.Kind.DETAILS,
            summary="Registered online through the patient portal; check the details at the "
            "first visit.",
            changed_by=account,
            via="portal",
        )
    PortalLink.objects.filter(pk=link.pk).update(patient=patient)
    audit(
        clinic=link.clinic,
        user=account,
        action=AuditEvent.Action.CREATE if not matched else AuditEvent.Action.UPDATE,
        obj=patient,
        patient_id=patient.pk,
        via="web",
        portal="registered",
        matched_existing_record=matched,
    )
    return Used(user=account, patient=patient, kind=link.kind)
