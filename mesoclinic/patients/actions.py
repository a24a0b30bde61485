"""State changes for patients: registration, screening, consent; and a new clinic's defaults."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, Clinic, acting, audit
from mesoclinic.formulary.models import Product, do_load_reference_ingredients
from mesoclinic.lib import limits
from mesoclinic.patients import consent as consent_text
from mesoclinic.patients.models import (
    Consent,
    ConsentTemplate,
    Patient,
    Screening,
    ScreeningForm,
    sha256,
)
from mesoclinic.patients.records import AllergyEntry, record_allergies
from mesoclinic.patients.screening import score
from mesoclinic.protocols.models import do_install_protocols


def do_setup_clinic(clinic: Clinic) -> None:
    """Give a clinic what it needs to work: the reference ingredients, its copy of every
    shipped protocol, the screening form and the consent text. Safe to run again."""
    with transaction.atomic():
        do_load_reference_ingredients()
        do_install_protocols(clinic)
        ScreeningForm.current(clinic)
        consent_text.current_template(clinic)


def do_change_consent_wording(
    clinic: Clinic,
    body: str,
    user: Any,
    *,
    base_version: int,
    note: str = "",
    via: str = "web",
) -> ConsentTemplate:
    """Save `body` as the clinic's next version of its consent wording; the earlier versions
    stay as they are, with the consents signed on them. `base_version` is the version the
    manager started from: when someone saved another since, nothing is saved and the error
    says so, rather than silently undoing their change. The clinic's row is locked while the
    version is read and written, so of two managers saving changes to one version at the same
    moment one is saved and the other is refused; no version number is taken twice."""
    body = body.replace("\r\n", "\n").strip()
    note = note.strip()
    if not body:
        raise ValidationError({"body": "Write the consent wording."})
    if len(note) > 300:
        raise ValidationError({"change_note": "Say what changed in at most 300 characters."})
    if len(body) > limits.CONSENT_TEXT:
        raise ValidationError(
            {"body": f"The wording may be at most {limits.CONSENT_TEXT:,} characters long."}
        )
    with transaction.atomic():
        Clinic.objects.select_for_update().filter(pk=clinic.pk).first()
        current = consent_text.current_template(clinic)
        if current.version != base_version:
            raise ValidationError(
                {
                    "body": f"Someone saved version {current.version} of the wording while you "
                    "were editing. Read it, then make your change again."
                }
            )
        if current.body.strip() == body:
            raise ValidationError({"body": "This is the wording in use already: change it first."})
        new = ConsentTemplate.objects.create(
            clinic=clinic,
            version=current.version + 1,
            body=body,
            change_note=note,
            created_by=acting(user),
        )
        audit(
            clinic=clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=new,
            via=via,
            version=new.version,
            replaces=current.version,
            note=note,
        )
    return new


def do_screen_patient(
    patient: Patient,
    answers: dict[str, Any],
    user: Any,
    via: str = "api",
    screened_at: dt.datetime | None = None,
    allergies: list[AllergyEntry] | None = None,
) -> Screening:
    """Score the answers against the clinic's current form and store the result, with the
    allergies the patient named, in one transaction.
    `screened_at` may be in the past (a paper form charted later), never in the future.
    Raises screening.AnswerError naming each bad answer."""
    screened_at = screened_at or timezone.now()
    if screened_at > timezone.now() + dt.timedelta(minutes=1):
        raise ValidationError({"screened_at": "cannot be in the future."})
    form = ScreeningForm.current(patient.clinic)
    on = screened_at.astimezone(patient.clinic.tz).date()
    outcome = score(form.document, answers, patient.date_of_birth, on)
    with transaction.atomic():
        screening = Screening.objects.create(
            patient=patient,
            form=form,
            answers=answers,
            result=outcome.result,
            reasons=outcome.reasons,
            screened_at=screened_at,
            screened_by=user,
        )
        audit(
            clinic=patient.clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=screening,
            patient_id=patient.pk,
            via=via,
            result=outcome.result,
        )
        record_allergies(patient, allergies or [], user=user, via=via)
    return screening


def consent_products(patient: Patient, product_ids: list[int] | None) -> list[Product]:
    """The products a consent covers: those named, or every active product of the clinic."""
    qs = Product.objects.filter(clinic=patient.clinic).prefetch_related("components__ingredient")
    if product_ids is None:
        return list(qs.filter(active=True))
    found = list(qs.filter(pk__in=product_ids))
    missing = sorted(set(product_ids) - {p.pk for p in found})
    if missing:
        raise ValueError(f"no product with id {', '.join(map(str, missing))} in this clinic")
    return found


def do_sign_consent(
    patient: Patient,
    *,
    products: list[Product],
    signed_name: str,
    method: str,
    signature: str = "",
    signed_at: dt.datetime | None = None,
    indication: str = "",
    areas: list[str] | None = None,
    user: Any,
    via: str = "api",
    witnessed: bool = True,
) -> Consent:
    """Record a signature on the current consent text for these products and this use.
    `user` witnessed it, unless `witnessed` is False: a patient signing on their own device
    (the portal) is the user who records it, and nobody witnessed it."""
    template = consent_text.current_template(patient.clinic)
    areas = areas or []
    text = consent_text.render(template, products, indication or None, areas)
    with transaction.atomic():
        consent = Consent.objects.create(
            patient=patient,
            template=template,
            indication=indication,
            areas=areas,
            text=text,
            text_sha256=sha256(text),
            signed_name=signed_name.strip(),
            signed_at=signed_at or timezone.now(),
            method=method,
            signature=signature,
            witnessed_by=user if witnessed else None,
        )
        consent.products.set(products)
        audit(
            clinic=patient.clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=consent,
            patient_id=patient.pk,
            via=via,
            template_version=template.version,
            products=[p.pk for p in products],
        )
    return consent
