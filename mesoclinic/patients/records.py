"""Correcting and completing a patient's record: edits with history, medications, allergies,
duplicates and merging two records into one. Every change is a `do_*` function run in one
transaction, writing a PatientChange (the record's history) and an AuditEvent."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, Clinic, audit
from mesoclinic.formulary.models import Ingredient
from mesoclinic.patients import normal
from mesoclinic.patients.models import Allergy, Medication, Patient, PatientChange

# The values a person may edit, in the order the pages show them.
EDITABLE = (
    "first_name",
    "last_name",
    "date_of_birth",
    "sex",
    "phone",
    "email",
    "address",
    "sms_consent",
    "emergency_name",
    "emergency_relation",
    "emergency_phone",
    "guardian_name",
    "guardian_relation",
    "guardian_phone",
    "guardian_email",
)
GUARDIAN_NEEDED = ("guardian_name", "guardian_relation", "guardian_phone")


def label_of(name: str) -> str:
    found = Patient._meta.get_field(name)
    assert isinstance(found, models.Field)
    return str(found.verbose_name).capitalize()


def shown(value: Any) -> str:
    """A value as the history page shows it."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return "" if value is None else str(value)


def guardian_problems(values: dict[str, Any], today: dt.date) -> dict[str, str]:
    """A minor (under 18 today) needs a guardian's name, relation and phone."""
    born = values.get("date_of_birth")
    if not isinstance(born, dt.date) or born > today:
        return {}  # a date of birth in the future is refused on its own
    if Patient(date_of_birth=born).is_minor_on(today):
        return {
            name: "A patient under 18 needs a parent or guardian: fill this in."
            for name in GUARDIAN_NEEDED
            if not str(values.get(name) or "").strip()
        }
    return {}


def _record_change(
    patient: Patient,
    kind: str,
    summary: str,
    user: Any,
    via: str,
    changes: dict[str, list[str]] | None = None,
) -> PatientChange:
    return PatientChange.objects.create(
        patient=patient,
        kind=kind,
        summary=summary,
        changes=changes or {},
        changed_by=user if getattr(user, "pk", None) else None,
        via=via,
    )


# Editing the details.


def _move_login(patient: Patient) -> None:
    """A patient signs in to the portal with their email address: a new address becomes their
    login's too. Refused, naming the field, when the address is empty or another account's."""
    from mesoclinic.accounts.models import User
    from mesoclinic.portal.actions import username_for

    login_id = patient.user_id
    assert login_id is not None
    if not patient.email:
        raise ValidationError(
            {"email": "The patient signs in to the portal with this address: give the new one."}
        )
    name = username_for(patient.email)
    if User.objects.filter(username__iexact=name).exclude(pk=login_id).exists():
        raise ValidationError(
            {
                "email": "This address already signs in to another account; check it with the "
                "patient."
            }
        )
    User.objects.filter(pk=login_id).update(username=name, email=patient.email)


def do_edit_patient(
    patient: Patient, values: dict[str, Any], *, user: Any, via: str = "web"
) -> PatientChange | None:
    """Save the new values of the editable fields given; keep the old ones in the history.
    Answers None when nothing changed. Raises ValidationError naming each bad field."""
    with transaction.atomic():
        locked = Patient.objects.select_for_update().select_related("clinic").get(pk=patient.pk)
        before = {name: getattr(locked, name) for name in EDITABLE}
        after = {**before, **{k: v for k, v in values.items() if k in EDITABLE}}
        problems = guardian_problems(after, timezone.localdate(timezone.now(), locked.clinic.tz))
        if problems:
            raise ValidationError(problems)
        changed = {
            name: [shown(before[name]), shown(after[name])]
            for name in EDITABLE
            if before[name] != after[name]
        }
        if not changed:
            return None
        for name, value in after.items():
            setattr(locked, name, value)
        locked.full_clean(exclude=["user", "merged_into"])
        if "email" in changed and locked.user_id is not None:
            _move_login(locked)
        locked.save()
        change = _record_change(
            locked,
            PatientChange.Kind.DETAILS,
            "Changed " + ", ".join(label_of(n).lower() for n in changed) + ".",
            user,
            via,
            {label_of(n): v for n, v in changed.items()},
        )
        audit(
            clinic=locked.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=locked,
            patient_id=locked.pk,
            via=via,
            fields=sorted(changed),
            change=change.pk,
        )
    for name in EDITABLE:
        setattr(patient, name, getattr(locked, name))
    patient.search_key, patient.phone_e164 = locked.search_key, locked.phone_e164
    patient.sms_consent_at = locked.sms_consent_at
    return change


def last_edit(patient: Patient) -> PatientChange | None:
    return (
        PatientChange.objects.filter(patient=patient)
        .select_related("changed_by")
        .order_by("-changed_at", "-id")
        .first()
    )


# Medications.


def do_add_medication(
    patient: Patient,
    *,
    name: str,
    dose: str = "",
    since: dt.date | None = None,
    user: Any,
    via: str = "web",
) -> Medication:
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Name the medicine."})
    with transaction.atomic():
        medication = Medication.objects.create(
            patient=patient,
            name=name,
            dose=dose.strip(),
            since=since,
            recorded_by=user if getattr(user, "pk", None) else None,
        )
        _record_change(
            patient,
            PatientChange.Kind.MEDICATION,
            f"Started {medication}.",
            user,
            via,
            {"Medication": ["", f"{medication}{f' since {since}' if since else ''}"]},
        )
        audit(
            clinic=patient.clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=medication,
            patient_id=patient.pk,
            via=via,
        )
    return medication


def do_stop_medication(
    medication: Medication, *, stopped_on: dt.date, user: Any, via: str = "web"
) -> Medication:
    """Record the day a medicine was stopped; the row stays."""
    with transaction.atomic():
        locked = Medication.objects.select_for_update().get(pk=medication.pk)
        if locked.stopped_on is not None:
            raise ValidationError({"stopped_on": "This medicine is already stopped."})
        if locked.since and stopped_on < locked.since:
            raise ValidationError({"stopped_on": "It cannot stop before it was started."})
        locked.stopped_on = stopped_on
        locked.stopped_by = user if getattr(user, "pk", None) else None
        locked.save(update_fields=["stopped_on", "stopped_by"])
        _record_change(
            medication.patient,
            PatientChange.Kind.MEDICATION,
            f"Stopped {locked} on {stopped_on.isoformat()}.",
            user,
            via,
            {"Medication": [str(locked), f"stopped on {stopped_on.isoformat()}"]},
        )
        audit(
            clinic=medication.patient.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=locked,
            patient_id=medication.patient_id,
            via=via,
            stopped_on=stopped_on.isoformat(),
        )
    return locked


# Allergies.


@dataclass(frozen=True)
class AllergyEntry:
    """One allergy to record: an ingredient of the formulary, or another substance in words."""

    ingredient: Ingredient | None = None
    substance: str = ""
    reaction: str = ""
    noticed: str = ""


def ingredients_for(clinic: Clinic) -> models.QuerySet[Ingredient]:
    """The ingredients a clinic may pick: its own and the reference ones."""
    return Ingredient.objects.filter(Q(clinic=clinic) | Q(clinic__isnull=True)).order_by("name")


def find_ingredients(clinic: Clinic, query: str, limit: int = 20) -> list[Ingredient]:
    """Ingredients whose name or key holds every word typed, accents and case aside."""
    words = normal.fold(query).split()
    found = []
    for ingredient in ingredients_for(clinic):
        text = normal.fold(f"{ingredient.name} {ingredient.key.replace('_', ' ')}")
        if all(w in text for w in words):
            found.append(ingredient)
            if len(found) >= limit:
                break
    return found


def record_allergies(
    patient: Patient, entries: list[AllergyEntry], *, user: Any, via: str
) -> list[Allergy]:
    """Record each allergy not already standing; call inside a transaction."""
    made = []
    for entry in entries:
        substance = entry.substance.strip()
        if entry.ingredient is None and not substance:
            raise ValidationError({"ingredient": "Choose an ingredient or name the substance."})
        standing = patient.allergies.standing()
        if entry.ingredient is not None and standing.filter(ingredient=entry.ingredient).exists():
            continue
        if entry.ingredient is None and any(
            normal.fold(a.substance) == normal.fold(substance)
            for a in standing.filter(ingredient__isnull=True)
        ):
            continue
        allergy = Allergy.objects.create(
            patient=patient,
            ingredient=entry.ingredient,
            substance="" if entry.ingredient else substance,
            reaction=entry.reaction.strip(),
            noticed=entry.noticed.strip(),
            recorded_by=user if getattr(user, "pk", None) else None,
        )
        _record_change(
            patient,
            PatientChange.Kind.ALLERGY,
            f"Recorded an allergy to {allergy.what}.",
            user,
            via,
            {"Allergy": ["", f"{allergy.what}: {allergy.reaction}".rstrip(": ")]},
        )
        audit(
            clinic=patient.clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=allergy,
            patient_id=patient.pk,
            via=via,
            ingredient=entry.ingredient.key if entry.ingredient else None,
        )
        made.append(allergy)
    return made


def do_record_allergy(
    patient: Patient, entry: AllergyEntry, *, user: Any, via: str = "web"
) -> Allergy:
    with transaction.atomic():
        made = record_allergies(patient, [entry], user=user, via=via)
    if not made:
        raise ValidationError({"ingredient": "This allergy is already recorded."})
    return made[0]


def do_mark_allergy_in_error(
    allergy: Allergy, *, reason: str, user: Any, via: str = "web"
) -> Allergy:
    """Mark an allergy as entered in error: it stays on the record, struck out, and no longer
    stops a session."""
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": "Say why this allergy was entered in error."})
    with transaction.atomic():
        locked = (
            Allergy.objects.select_for_update(of=("self",))
            .select_related("ingredient")
            .get(pk=allergy.pk)
        )
        if locked.entered_in_error_at is not None:
            raise ValidationError({"reason": "This allergy is already marked as entered in error."})
        locked.entered_in_error_at = timezone.now()
        locked.entered_in_error_by = user if getattr(user, "pk", None) else None
        locked.entered_in_error_reason = reason
        locked.save(
            update_fields=["entered_in_error_at", "entered_in_error_by", "entered_in_error_reason"]
        )
        _record_change(
            allergy.patient,
            PatientChange.Kind.ALLERGY,
            f"Marked the allergy to {locked.what} as entered in error: {reason}",
            user,
            via,
            {"Allergy": [locked.what, "entered in error"]},
        )
        audit(
            clinic=allergy.patient.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=locked,
            patient_id=allergy.patient_id,
            via=via,
            entered_in_error=True,
            reason=reason,
        )
    return locked


# Duplicates.


@dataclass
class Duplicate:
    patient: Patient
    reasons: list[str] = field(default_factory=list)


def find_duplicates(
    clinic: Clinic,
    *,
    first_name: str = "",
    last_name: str = "",
    date_of_birth: dt.date | None = None,
    phone: str = "",
    email: str = "",
    exclude: int | None = None,
) -> list[Duplicate]:
    """The clinic's patients (not merged away) who share the name and date of birth, the phone
    (normalised) or the email, each with what matched."""
    key = normal.search_key(first_name, last_name)
    number = normal.e164(phone, normal.region_of(clinic.phone))
    email = email.strip().lower()
    query = Q(pk__in=[])
    if key and date_of_birth:
        query |= Q(search_key=key, date_of_birth=date_of_birth)
    if number:
        query |= Q(phone_e164=number)
    if email:
        query |= Q(email__iexact=email)
    qs = Patient.objects.filter(query, clinic=clinic, merged_into__isnull=True)
    if exclude is not None:
        qs = qs.exclude(pk=exclude)
    found = []
    for p in qs.order_by("last_name", "first_name", "pk")[:10]:
        reasons = []
        if key and p.search_key == key and p.date_of_birth == date_of_birth:
            reasons.append("the same name and birth")
        if number and p.phone_e164 == number:
            reasons.append("the same phone number")
        if email and p.email.lower() == email:
            reasons.append("the same email address")
        found.append(Duplicate(p, reasons))
    return found


# Merging.

# The values a manager chooses between when merging: the editable ones.
MERGEABLE = EDITABLE


def patient_links() -> list[tuple[type[models.Model], str]]:
    """(model, field name) of every foreign key to Patient, read from the models, so that a
    model added later is moved too."""
    return [
        (rel.related_model, rel.field.name)
        for rel in Patient._meta.related_objects
        if (rel.one_to_many or rel.one_to_one) and not isinstance(rel.related_model, str)
    ]


def _overlapping_visit(keep: Patient, other: Patient) -> Any:
    from mesoclinic.scheduling.models import Appointment

    live = ~Q(status__in=["cancelled", "no_show"])
    for visit in Appointment.objects.filter(live, patient=other):
        clash = (
            Appointment.objects.filter(live, patient=keep)
            .filter(starts_at__lt=visit.ends_at, ends_at__gt=visit.starts_at)
            .first()
        )
        if clash is not None:
            return clash
    return None


def do_merge_patients(
    keep: Patient,
    other: Patient,
    *,
    take_from_other: list[str],
    user: Any,
    via: str = "web",
) -> Patient:
    """Merge `other` into `keep`: the values named in `take_from_other` are copied from the
    other record, every row that belongs to the other record moves to the kept one, and the
    other record stays, marked as merged into the kept one. Both rows are locked first."""
    with transaction.atomic():
        locked = {
            p.pk: p
            for p in Patient.objects.select_for_update()
            .select_related("clinic")
            .filter(pk__in=[keep.pk, other.pk])
            .order_by("pk")
        }
        kept, gone = locked.get(keep.pk), locked.get(other.pk)
        if kept is None or gone is None or kept.pk == gone.pk:
            raise ValidationError({"other": "Choose another record of the same clinic."})
        if kept.clinic_id != gone.clinic_id:
            raise ValidationError({"other": "Choose another record of the same clinic."})
        if kept.merged_into_id or gone.merged_into_id:
            raise ValidationError({"other": "One of these records is already merged."})
        clash = _overlapping_visit(kept, gone)
        if clash is not None:
            when = timezone.localtime(clash.starts_at, kept.clinic.tz)
            raise ValidationError(
                {
                    "other": f"Both records have a visit at {when:%Y-%m-%d %H:%M}: "
                    "cancel one of them first."
                }
            )
        copied = {
            name: [shown(getattr(kept, name)), shown(getattr(gone, name))]
            for name in take_from_other
            if name in MERGEABLE and getattr(kept, name) != getattr(gone, name)
        }
        for name in copied:
            setattr(kept, name, getattr(gone, name))
        problems = guardian_problems(
            {n: getattr(kept, n) for n in EDITABLE}, timezone.localdate(timezone.now())
        )
        if problems:
            raise ValidationError(problems)
        moved = _move_rows(kept, gone, user, via)
        if kept.user_id is None and gone.user_id is not None:
            login = gone.user_id
            gone.user = None
            gone.save(update_fields=["user"])
            kept.user_id = login
            moved["the patient's login"] = 1
        gone.merged_into = kept
        gone.merged_at = timezone.now()
        gone.save(update_fields=["merged_into", "merged_at"])
        try:
            kept.save()
        except IntegrityError as exc:  # pragma: no cover - the checks above come first
            raise ValidationError({"other": "These records cannot be merged."}) from exc
        audit_ids = list(
            AuditEvent.objects.filter(patient_id=gone.pk, clinic=kept.clinic).values_list(
                "pk", flat=True
            )
        )
        AuditEvent.objects.filter(pk__in=audit_ids).update(patient_id=kept.pk)
        _record_change(
            kept,
            PatientChange.Kind.MERGE,
            f"Merged record #{gone.pk} into this one.",
            user,
            via,
            {label_of(n): v for n, v in copied.items()},
        )
        _record_change(gone, PatientChange.Kind.MERGE, f"Merged into record #{kept.pk}.", user, via)
        for target in (kept, gone):
            audit(
                clinic=kept.clinic,
                user=user,
                action=AuditEvent.Action.UPDATE,
                obj=target,
                patient_id=target.pk,
                via=via,
                merged=gone.pk,
                into=kept.pk,
                values_from_merged=sorted(copied),
                moved={k: v for k, v in moved.items() if v},
                audit_rows_moved=audit_ids,
            )
    return kept


def _move_rows(kept: Patient, gone: Patient, user: Any, via: str) -> dict[str, int]:
    """Point every row of the merged record at the kept one. An allergy recorded on both is
    kept once: the merged record's copy is marked as entered in error, never deleted."""
    now = timezone.now()
    kept_ingredients = set(
        kept.allergies.standing().exclude(ingredient=None).values_list("ingredient_id", flat=True)
    )
    gone.allergies.standing().filter(ingredient_id__in=kept_ingredients).update(
        entered_in_error_at=now,
        entered_in_error_by=user if getattr(user, "pk", None) else None,
        entered_in_error_reason=f"Also recorded on record #{kept.pk} when the records were merged.",
    )
    moved = {}
    for model, name in patient_links():
        count = model._default_manager.filter(**{name: gone}).update(**{name: kept})
        moved[str(model._meta.verbose_name_plural)] = count
    return moved
