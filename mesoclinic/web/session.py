"""Charting a session in the web app, and its aftercare sheet.

Each area's row may choose the vial its lot is drawn from: left alone, charting takes the lot's
oldest open vial still within its beyond-use time, or opens a new one (formulary.stock.vial_plan,
as the API does); "Open a new vial" opens one though another is open; or an open vial of the
lot, named. A named vial meets the vial gates (a multi-dose vial past its beyond-use time, a
single-dose vial of another patient), which no override lifts, and their refusal is shown
beside the row that named it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from mesoclinic.access import access_course, access_session, vials_for
from mesoclinic.accounts.models import AuditEvent, Clinic, audit
from mesoclinic.courses import actions
from mesoclinic.courses.models import Course, Session, SessionInjection, SessionRefused
from mesoclinic.formulary import stock
from mesoclinic.formulary.models import Lot
from mesoclinic.lib import formats
from mesoclinic.protocols.vocab import NEVER_OVERRIDABLE, Area, RefusalCode
from mesoclinic.web.chart import _find_lot
from mesoclinic.web.context import ALL_STAFF, CLINICAL, caller, reading

TECHNIQUES = SessionInjection.Technique.choices
# An area's vial field: "" leaves the choice to charting, NEW_VIAL opens a new vial, a vial's id
# names an open vial of the area's lot.
NEW_VIAL = "new"
# The vial gates: their refusals are shown beside the row that named the vial, too.
VIAL_GATES = (RefusalCode.VIAL_BEYOND_USE, RefusalCode.SINGLE_DOSE_REUSED)


def _rows(
    request: HttpRequest, clinic_id: int, areas: list[str]
) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """The injection rows the form posted, one per ticked area, with any input errors by the
    field they belong to ("" for the form as a whole). Lot numbers are looked up in the
    course's clinic only."""
    rows: list[dict[str, Any]] = []
    errors: dict[str, list[str]] = {}

    def error(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    for area in areas:
        if request.POST.get(f"area_{area}") != "on":
            continue
        label = Area(area).label
        number = request.POST.get(f"lot_{area}", "").strip()
        raw_volume = request.POST.get(f"volume_{area}", "").strip()
        technique = request.POST.get(f"technique_{area}", "nappage")
        row: dict[str, Any] = {
            "area": area,
            "lot_number": number,
            "volume": raw_volume,
            "technique": technique,
            "vial_choice": request.POST.get(f"vial_{area}", "").strip(),
            "vial": None,
            "new_vial": False,
        }
        lot = _find_lot(clinic_id, number) if number else None
        if not number:
            error(f"lot_{area}", f"{label}: enter or scan the lot number.")
        elif lot is None:
            error(f"lot_{area}", f"{label}: no lot {number!r} in this clinic.")
        try:
            volume = Decimal(raw_volume)
            if not Decimal("0.01") <= volume <= Decimal("50"):
                raise InvalidOperation
        except InvalidOperation:
            error(
                f"volume_{area}", f"{label}: the volume must be a number of mL between 0.01 and 50."
            )
            volume = None
        if technique not in dict(TECHNIQUES):
            error(f"technique_{area}", f"{label}: choose a technique.")
        row.update(lot=lot, volume_ml=volume)
        rows.append(row)
    if not rows and not errors:
        error("", "Tick at least one area on the map.")
    return rows, errors


def _choose_vials(
    request: HttpRequest, rows: list[dict[str, Any]], when: dt.datetime
) -> dict[str, list[str]]:
    """Each row's vial from its vial field, and the errors by field: a named vial is looked up
    in the clinic's vials only, must be of the row's lot and open at `when`
    (formulary.stock.check_chosen), and a lot is drawn from one vial in a visit, so two rows of
    one lot may not choose differently (a row that leaves it to charting follows the other)."""
    errors: dict[str, list[str]] = {}
    ids = {int(r["vial_choice"]) for r in rows if r["vial_choice"].isdigit()}
    found = {
        v.pk: v
        for v in vials_for(caller(request), CLINICAL)
        .select_related("lot__product")
        .filter(pk__in=ids)
    }
    first: dict[int, tuple[str, str]] = {}  # lot id: (the choice, the area that made it)
    for r in rows:
        choice, lot, label = r["vial_choice"], r["lot"], Area(r["area"]).label
        field = f"vial_{r['area']}"
        if not choice or lot is None:
            continue
        if choice == NEW_VIAL:
            r["new_vial"] = True
        else:
            vial = found.get(int(choice)) if choice.isdigit() else None
            if vial is None:
                errors.setdefault(field, []).append(f"{label}: no such open vial in this clinic.")
                continue
            if vial.lot_id != lot.pk:
                errors.setdefault(field, []).append(
                    f"{label}: {vial.label} is not of lot {lot.lot_number}. Choose a vial of the "
                    "lot injected, or leave the choice to charting."
                )
                continue
            try:
                stock.check_chosen({lot.pk: vial}, when)
            except ValidationError as exc:
                errors.setdefault(field, []).extend(f"{label}: {m}" for m in exc.messages)
                continue
            r["vial"] = vial
        chosen, by = first.setdefault(lot.pk, (choice, label))
        if chosen != choice:
            errors.setdefault(field, []).append(
                f"{label}: every injection of lot {lot.lot_number} in a visit is drawn from one "
                f"vial. Choose the same as for {by}."
            )
    return errors


def vial_options(course: Course, lots: list[Lot], when: dt.datetime) -> list[dict[str, Any]]:
    """The open vials of the lots the form suggests, by lot, for each area's vial field: each
    with what is left in it and, when it may not be used for this patient, why. Such a vial
    stays listed, so the one in the practitioner's hand is found, and refused in words."""
    clinic = course.clinic
    found = stock.on_hand(lots)
    groups = []
    for lot in lots:
        options = []
        for o in found[lot.pk].open_vials:
            vial = o.vial
            if vial.opened_at > when:
                continue
            parts = [f"Vial {vial.number}", f"{o.left_ml} mL left"]
            if vial.single_dose:
                if vial.patient_id is None:
                    parts.append("single-dose, not yet used")
                elif vial.patient_id == course.patient_id:
                    parts.append("single-dose, opened for this patient")
                else:
                    parts.append("single-dose, used for another patient: may not be used")
            elif vial.beyond_use_at is not None and vial.beyond_use_at <= when:
                parts.append("past its beyond-use date: may not be used")
            else:
                parts.append(f"use by {formats.short_when_text(vial.beyond_use_at, clinic)}")
            options.append({"value": str(vial.pk), "label": ", ".join(parts)})
        if options:
            groups.append({"label": f"{lot.product.name} lot {lot.lot_number}", "options": options})
    return groups


def _vial_refusals(
    rows: list[dict[str, Any]], refusals: list[dict[str, Any]]
) -> dict[str, list[str]]:
    """The vial gates' refusals beside the rows whose named vial they are about."""
    errors: dict[str, list[str]] = {}
    for refusal in refusals:
        if refusal["code"] not in VIAL_GATES:
            continue
        for r in rows:
            if r["vial"] is not None and refusal["message"].startswith(f"{r['vial'].label} "):
                label = Area(r["area"]).label
                errors.setdefault(f"vial_{r['area']}", []).append(f"{label}: {refusal['message']}")
    return errors


def _in_words(exc: ValidationError, overrides: list[str]) -> list[str]:
    """The action's input errors for the form: an override it refuses is named in words, not
    by its code."""
    if hasattr(exc, "error_dict") and "override_codes" in exc.error_dict:
        said = " ".join(exc.message_dict["override_codes"])
        refused = [c for c in overrides if c in said]
        rest = [m for f, ms in exc.message_dict.items() if f != "override_codes" for m in ms]
        return [f"This cannot be overridden for this session: {code_words(refused)}.", *rest]
    return list(exc.messages)


def usable_lots(course: Course, when: dt.datetime) -> QuerySet[Lot]:
    """Suggestions for the lot fields: the lots of the course's planned products (of the
    clinic's active products, for a course that plans none) that may be used on the day."""
    lots = Lot.objects.filter(
        product__clinic_id=course.clinic_id,
        product__active=True,
        recalled=False,
        expires_on__gte=when.astimezone(course.clinic.tz).date(),
    )
    planned = list(course.products.values_list("pk", flat=True))
    if planned:
        lots = lots.filter(product_id__in=planned)
    return lots.select_related("product").order_by("product__name", "expires_on")


def _lines(
    areas: list[str], rows: list[dict[str, Any]], errors: dict[str, list[str]]
) -> list[dict[str, Any]]:
    """One line of the form per planned area, with what was posted for it and the errors
    beside each of its fields, so a form sent back keeps every value."""
    posted = {r["area"]: r for r in rows}
    return [
        {
            "key": a,
            "label": Area(a).label,
            "ticked": a in posted,
            "row": posted.get(a, {}),
            "errors": {
                part: errors.get(f"{part}_{a}", [])
                for part in ("lot", "volume", "technique", "vial")
            },
        }
        for a in areas
    ]


@login_required
def chart_session(request: HttpRequest, course_id: int) -> HttpResponse:
    course = access_course(caller(request), course_id, CLINICAL, view=reading(request))
    tz = course.clinic.tz
    errors: dict[str, list[str]] = {}
    refusals: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    when = timezone.now()
    if request.method == "POST":
        rows, errors = _rows(request, course.clinic_id, list(course.areas))
        parsed = parse_datetime(request.POST.get("performed_at", ""))
        if parsed is None:
            errors.setdefault("performed_at", []).append("Performed at: enter a date and time.")
        else:
            when = timezone.make_aware(parsed, tz) if timezone.is_naive(parsed) else parsed
            for field, found in _choose_vials(request, rows, when).items():
                errors.setdefault(field, []).extend(found)
        overrides = [c for c in request.POST.getlist("override_codes") if c in RefusalCode.values]
        if not errors:
            try:
                session = actions.do_record_session(
                    course,
                    performed_at=when,
                    practitioner=request.user,
                    injections=[
                        actions.InjectionInput(
                            r["area"],
                            r["lot"],
                            r["volume_ml"],
                            r["technique"],
                            vial=r["vial"],
                            new_vial=r["new_vial"],
                        )
                        for r in rows
                    ],
                    stimulants_avoided=request.POST.get("stimulants_avoided") == "on",
                    numbing_cream=request.POST.get("numbing_cream") == "on",
                    notes=request.POST.get("notes", ""),
                    override_codes=overrides,
                    override_reason=request.POST.get("override_reason", ""),
                    user=request.user,
                    via="web",
                )
            except SessionRefused as exc:
                refusals = [r.as_dict() for r in exc.refusals]
                for field, found in _vial_refusals(rows, refusals).items():
                    errors.setdefault(field, []).extend(found)
            except ValidationError as exc:
                errors.setdefault("", []).extend(_in_words(exc, overrides))
            else:
                messages.success(request, f"Session {session.number} charted.")
                return redirect("web:session", session_id=session.pk)
    else:
        refusals = [r.as_dict() for r in actions.check_session(course, when, request.user, [])]
    lots = list(usable_lots(course, when))
    return render(
        request,
        "web/chart_session.html",
        {
            "page": "patients",
            "course": course,
            "patient": course.patient,
            "areas": [(a, Area(a).label) for a in course.areas],
            "all_areas": Area.values,
            "rows": {r["area"]: r for r in rows},
            "lines": _lines(list(course.areas), rows, errors),
            # Every error, for the summary above the form; each is also shown by its field.
            "errors": [m for messages_ in errors.values() for m in messages_],
            "form_errors": errors.get("", []),
            "performed_at_errors": errors.get("performed_at", []),
            "overrides": request.POST.getlist("override_codes"),
            "refusals": refusals,
            "techniques": TECHNIQUES,
            "performed_at": when.astimezone(tz).strftime("%Y-%m-%dT%H:%M"),
            "posted": request.POST,
            # A gate that is never overridden is not offered (the action refuses it anyway).
            "override_choices": [c for c in RefusalCode.choices if c[0] not in NEVER_OVERRIDABLE],
            # Suggestions for the lot fields: the clinic's lots that may be used today. A lot
            # typed or scanned that is not among them is still looked up, and refused in words.
            "usable_lots": lots,
            # Their open vials, for each area's vial field.
            "vial_options": vial_options(course, lots, when),
            "new_vial": NEW_VIAL,
        },
        status=409 if refusals and request.method == "POST" else 200,
    )


@login_required
def session_detail(request: HttpRequest, session_id: int) -> HttpResponse:
    session = access_session(caller(request), session_id, ALL_STAFF)
    audit(
        clinic=session.course.clinic,
        user=request.user,
        action=AuditEvent.Action.VIEW,
        obj=session,
        patient_id=session.course.patient_id,
        via="web",
    )
    return render(
        request,
        "web/session.html",
        {
            "page": "patients",
            "session": session,
            "course": session.course,
            "patient": session.course.patient,
            "aftercare": session.aftercare(),
            "call_line": call_line(session.course.clinic),
            "overridden": code_words(session.override_codes),
            "injections": session.injections.select_related("lot__product", "vial"),
            **_amendments(session),
        },
    )


def code_words(codes: list[str]) -> str:
    """Overridden gates by their names in words, never their stored codes."""
    labels = dict(RefusalCode.choices)
    return ", ".join(str(labels.get(c, c.replace("_", " "))) for c in codes or [])


def call_line(clinic: Clinic) -> str:
    """Whom the patient calls after a session, as one sentence, on every form of the
    aftercare (the page, its print, the PDF and the email)."""
    if clinic.phone:
        return f"If something worries you, call {clinic.name} on {clinic.phone}."
    return f"If something worries you, call {clinic.name}."


def _amendments(session: Session) -> dict[str, Any]:
    """The session's corrections, oldest first, each with its field in words, and the notes
    as amended last (clinical part, issue 12)."""
    rows = list(session.amendments.select_related("amended_by"))
    for a in rows:
        a.label = actions.AMENDABLE.get(a.field, a.field)  # type: ignore[attr-defined]
    notes = [a.amended for a in rows if a.field == "notes"]
    return {"amendments": rows, "amended_notes": notes[-1] if notes else session.notes}


def aftercare_text(session: Session) -> str:
    lines = [f"Aftercare for your session at {session.course.clinic.name}", ""]
    lines += [f"- {item['text']}" for item in session.aftercare()]
    lines += ["", call_line(session.course.clinic)]
    return "\n".join(lines)


@login_required
@require_POST
def email_aftercare(request: HttpRequest, session_id: int) -> HttpResponse:
    session = access_session(caller(request), session_id, CLINICAL)
    patient = session.course.patient
    if not patient.email:
        messages.error(request, "The patient has no email address on file.")
    else:
        send_mail(
            f"Your aftercare · {session.course.clinic.name}",
            aftercare_text(session),
            None,
            [patient.email],
        )
        audit(
            clinic=session.course.clinic,
            user=request.user,
            action=AuditEvent.Action.EXPORT,
            obj=session,
            patient_id=patient.pk,
            via="web",
            sent_to=patient.email,
        )
        messages.success(request, f"Aftercare emailed to {patient.email}.")
    return redirect("web:session", session_id=session.pk)
