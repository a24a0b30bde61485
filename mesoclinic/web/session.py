"""Charting a session in the web app, and its aftercare sheet."""

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

from mesoclinic.access import access_course, access_session
from mesoclinic.accounts.models import AuditEvent, Clinic, audit
from mesoclinic.courses import actions
from mesoclinic.courses.models import Course, Session, SessionInjection, SessionRefused
from mesoclinic.formulary.models import Lot
from mesoclinic.protocols.vocab import Area, RefusalCode
from mesoclinic.web.chart import _find_lot
from mesoclinic.web.context import ALL_STAFF, CLINICAL, caller, reading

TECHNIQUES = SessionInjection.Technique.choices


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
                part: errors.get(f"{part}_{a}", []) for part in ("lot", "volume", "technique")
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
        overrides = [c for c in request.POST.getlist("override_codes") if c in RefusalCode.values]
        if not errors:
            try:
                session = actions.do_record_session(
                    course,
                    performed_at=when,
                    practitioner=request.user,
                    injections=[
                        actions.InjectionInput(r["area"], r["lot"], r["volume_ml"], r["technique"])
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
            except ValidationError as exc:
                errors.setdefault("", []).extend(exc.messages)
            else:
                messages.success(request, f"Session {session.number} charted.")
                return redirect("web:session", session_id=session.pk)
    else:
        refusals = [r.as_dict() for r in actions.check_session(course, when, request.user, [])]
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
            "override_choices": RefusalCode.choices,
            # Suggestions for the lot fields: the clinic's lots that may be used today. A lot
            # typed or scanned that is not among them is still looked up, and refused in words.
            "usable_lots": usable_lots(course, when),
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
