"""The patient's chart: screening, consent, planning a course, the allergy test, and every
reason a session may not go ahead. Each change goes through the same actions as the API."""

from __future__ import annotations

import re
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from mesoclinic.access import access_allergy_test, access_course, access_patient
from mesoclinic.accounts.models import AuditEvent, audit
from mesoclinic.courses import actions, rules
from mesoclinic.courses.models import Course, FollowUp, GateRecords, Session
from mesoclinic.formulary.models import Lot, Product
from mesoclinic.notify.models import MaintenanceInvitation
from mesoclinic.outcomes import photo_actions
from mesoclinic.outcomes.models import Measurement, Photo
from mesoclinic.patients import consent as consent_text
from mesoclinic.patients.actions import do_sign_consent
from mesoclinic.patients.models import Patient
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.protocols.vocab import Area
from mesoclinic.scheduling import planning
from mesoclinic.scheduling.models import Appointment
from mesoclinic.web import chart_head, feeds, forms, safety_card, timeline
from mesoclinic.web import patients as patient_record
from mesoclinic.web.context import ALL_STAFF, CLINICAL, caller, reading


def flash_errors(request: HttpRequest, form: Form, what: str) -> None:
    """A form posted from the chart returns to the chart: its errors go in messages, each
    named by its field's label (or `what` for the form as a whole)."""
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields else what
        messages.error(request, f"{label}: {' '.join(str(e) for e in errors)}")


def chart_url(course: Course) -> str:
    """The chart, scrolled to the course."""
    return f"{reverse('web:chart', args=[course.patient_id])}#course-{course.pk}"


def _find_lot(clinic_id: int, number: str) -> Lot | None:
    return (
        Lot.objects.select_related("product")
        .filter(product__clinic_id=clinic_id, lot_number__iexact=number.strip())
        .first()
    )


@login_required
def chart(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = access_patient(caller(request), patient_id, ALL_STAFF)
    # The patient's record card (web/patients.py): a merged record sends to the kept one.
    if (moved := patient_record.merged_notice(request, patient)) is not None:
        return moved
    return chart_page(request, patient)


def chart_page(
    request: HttpRequest,
    patient: Patient,
    *,
    bound: dict[int, Form] | None = None,
    status: int = 200,
) -> HttpResponse:
    """The chart. A form posted from it that has errors comes back in `bound`, by course id
    (the allergy test) or test id (its reading), so the page shows it with every value kept
    and each error beside its field."""
    bound = bound or {}
    audit(
        clinic=patient.clinic,
        user=request.user,
        action=AuditEvent.Action.VIEW,
        obj=patient,
        patient_id=patient.pk,
        via="web",
    )
    courses = []
    photo_consents = photo_actions.consent_state(patient)
    patient_courses = list(
        patient.courses.select_related("protocol", "clinic", "created_by").order_by("-created_at")
    )
    # What the course cards need, read once for all the patient's courses rather than once
    # per course: the timeline's records (sessions, tests, side effects, safety), the visits,
    # the measurements and the photos' areas.
    ids = [c.pk for c in patient_courses]
    # The patient's screenings and consents serve the page, the timeline and the gate alike.
    screenings = list(patient.screenings.all())
    consents = GateRecords.consents_of(patient)
    allergies = GateRecords.allergies_of(patient)
    records_of = timeline.load_many(patient_courses, consents=consents)
    visits_of: dict[int, list[Appointment]] = {pk: [] for pk in ids}
    for a in Appointment.objects.filter(course_id__in=ids).select_related("practitioner", "room"):
        visits_of[a.course_id].append(a)  # type: ignore[index]
    measurements_of: dict[int, list[Measurement]] = {pk: [] for pk in ids}
    for m in Measurement.objects.filter(course_id__in=ids).order_by("taken_at", "id"):
        measurements_of[m.course_id].append(m)
    photo_areas: dict[int, list[str]] = {pk: [] for pk in ids}
    for course_id, area in Photo.objects.filter(course_id__in=ids).values_list("course_id", "area"):
        photo_areas[course_id].append(area)
    invitations = {i.course_id: i for i in MaintenanceInvitation.objects.filter(course_id__in=ids)}
    reading_form = forms.ReadingForm(initial={"read_at": _now_local(patient)})
    test_form = forms.AllergyTestForm(initial={"given_at": _now_local(patient)})
    # Every reason the next session of each open course may not go ahead, judged for the
    # practitioner who will give it: the booked visit's, else the one looking if clinical.
    refusals = gate_for_next_sessions(
        [c for c in patient_courses if c.status != Course.Status.STOPPED],
        visits_of,
        request.user if caller(request).role in CLINICAL else None,
        GateRecords(
            screenings=screenings,
            consents=consents,
            tests_of={pk: r.tests for pk, r in records_of.items()},
            sessions_of={pk: r.sessions for pk, r in records_of.items()},
            measured_of={pk: [m.taken_at for m in ms] for pk, ms in measurements_of.items()},
            allergies=allergies,
            side_effects=[row.effect for r in records_of.values() for row in r.side_effects],
            adverse_events=[e for r in records_of.values() for e in r.adverse_events],
            watch_follow_ups=[f for r in records_of.values() for f in r.watch_follow_ups],
            effect_follow_ups=[
                f
                for r in records_of.values()
                for row in r.side_effects
                for f in row.follow_ups
                if f.priority == FollowUp.Priority.URGENT
            ],
        ),
    )
    for course in patient_courses:
        open_course = course.status != Course.Status.STOPPED
        reasons = refusals.get(course.pk, [])
        records = records_of[course.pk]
        tests = records.tests
        for t in tests:
            # A reading is still needed until one is taken after the wait.
            t.needs_reading = not any(  # type: ignore[attr-defined]
                r.read_at >= t.readable_from() for r in t.readings.all()
            )
            t.reading_form = bound.get(-t.pk) or reading_form  # type: ignore[attr-defined]
        visits = visits_of[course.pk]
        progress = course.progress(records.sessions)
        courses.append(
            {
                "course": course,
                "invitation": invitations.get(course.pk),
                "progress": progress,
                "primary": chart_head.primary_action(
                    course, reasons, len(records.sessions), open_course
                ),
                "needs_consent": chart_head.needs_consent(course, reasons, records),
                "test_form": bound.get(course.pk) or test_form,
                "plan": course.plan(),
                "sessions": records.sessions,
                "tests": tests,
                "reasons": reasons,
                "open": open_course,
                "side_effects": records.side_effects,
                "timeline": timeline.build(course, records),
                "visits": visits,
                "to_book": course.status in BOOKABLE
                and bool(planning.remaining_from(course, records.sessions, tests, visits).visits),
                # The maintenance window, with no slot search: booking finds the time.
                "maintenance": planning.maintenance_due(
                    course, sessions=records.sessions, visits=visits
                ),
                "photos": photo_actions.summary(course, photo_consents, photo_areas[course.pk]),
                **safety_card.course_safety(course, records),
                # Imported here: web.outcomes builds on this module's helpers.
                **_outcomes_row(course, measurements_of[course.pk], records.sessions),
            }
        )
    screening = max(screenings, key=lambda s: (s.screened_at, s.pk), default=None)
    record = patient_record.chart_context(patient, allergies)
    return render(
        request,
        "web/chart.html",
        {
            "page": "patients",
            "patient": patient,
            "screening": screening,
            "consents": consents,
            "allergies": record["record_allergies"],
            "courses": courses,
            "reading_form": reading_form,
            "test_form": test_form,
            "now_local": _now_local(patient),
            # The header above the sections: what must be seen before anything else.
            "head": chart_head.header(
                patient, screening, list(records_of.values()), timezone.now()
            ),
            **feeds.patient_feed_context(request, patient.pk),
            # The record card: details edited, medications, allergies (web/patients.py).
            **record,
            # Every open follow-up, whatever opened it, each with its close form.
            "open_follow_ups": chart_head.open_follow_ups(list(records_of.values())),
            "follow_up_resolutions": FollowUp.Resolution.choices,
            # The patient's messages the clinic has not read yet (the portal's thread).
            "unread_messages": patient.messages.filter(
                sender="patient", read_at__isnull=True
            ).count()
            if patient.user_id
            else 0,
        },
        status=status,
    )


BOOKABLE = (Course.Status.PLANNED, Course.Status.ACTIVE)


def gate_for_next_sessions(
    courses: list[Course],
    visits_of: dict[int, list[Appointment]],
    chosen: Any,
    records: GateRecords | None = None,
) -> dict[int, list[rules.Refusal]]:
    """The gate for each course's next session, judged for the practitioner who will give it:
    the practitioner of its next booked visit, else `chosen` (the viewer, when they may give
    it), else nobody yet, and then the licence is judged when one is booked. Never for
    whoever is looking: the front desk has no licence and gives no session. The facts are
    read once for all the courses, whoever gives each, from `records` where the caller has
    read them."""
    now = timezone.now()
    practitioner_of: dict[int, Any] = {}
    for course in courses:
        upcoming = [
            a
            for a in visits_of.get(course.pk, [])
            if a.status not in Appointment.INACTIVE
            and a.status != Appointment.Status.DONE
            and a.ends_at >= now
        ]
        nxt = min(upcoming, key=lambda a: a.starts_at, default=None)
        practitioner_of[course.pk] = nxt.practitioner if nxt is not None else chosen
    return actions.check_sessions(courses, now, chosen, [], practitioner_of, records)


def _outcomes_row(
    course: Course, measurements: list[Measurement], sessions: list[Session]
) -> dict[str, object]:
    from mesoclinic.web.outcomes import course_row

    return course_row(course, measurements, sessions)


def _now_local(patient: Patient) -> str:
    return timezone.now().astimezone(patient.clinic.tz).strftime("%Y-%m-%dT%H:%M")


BULLET = re.compile(r"^\s*(?:[-•*]|\d+[.)])\s")


def reading_paragraphs(text: str) -> list[list[str]]:
    """The consent text as paragraphs to read on any screen: the lines of a paragraph,
    wrapped in the stored text at a fixed width, flow together; a list item (a line starting
    with "-", "•" or "1.") keeps its own line."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines: list[str] = []
        for raw in block.splitlines():
            line = raw.strip()
            if not line:
                continue
            if lines and not BULLET.match(raw):
                lines[-1] = f"{lines[-1]} {line}"
            else:
                lines.append(line)
        if lines:
            paragraphs.append(lines)
    return paragraphs


@login_required
def consent(request: HttpRequest, patient_id: int, course_id: int) -> HttpResponse:
    patient = access_patient(caller(request), patient_id, CLINICAL, view=reading(request))
    course = access_course(caller(request), course_id, CLINICAL)
    if course.patient_id != patient.pk:
        raise Http404("Not this patient's course.")
    products = consent_products(course)
    template = consent_text.current_template(patient.clinic)
    text = consent_text.render(template, products, course.indication, list(course.areas))
    form = forms.ConsentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        signature = form.cleaned_data["signature"]
        do_sign_consent(
            patient,
            products=products,
            signed_name=form.cleaned_data["signed_name"],
            method="drawn" if signature else "typed",
            signature=signature,
            indication=course.indication,
            areas=list(course.areas),
            user=request.user,
            via="web",
        )
        messages.success(request, "Consent signed.")
        return redirect("web:chart", patient_id=patient.pk)
    return render(
        request,
        "web/consent.html",
        {
            "page": "patients",
            "patient": patient,
            "course": course,
            "text": text,
            "paragraphs": reading_paragraphs(text),
            "form": form,
            "template": template,
        },
    )


def consent_products(course: Course) -> list[Product]:
    """The products a course's consent names: those planned for it, or for a course that
    plans none (planned before products were), the clinic's products for its indication."""
    planned = list(course.products.prefetch_related("components__ingredient"))
    if planned:
        return planned
    return [
        p
        for p in Product.objects.filter(clinic=course.clinic, active=True).prefetch_related(
            "components__ingredient"
        )
        if p.is_for(course.indication)
    ]


@login_required
def plan_course(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = access_patient(caller(request), patient_id, CLINICAL, view=reading(request))
    protocols = ClinicProtocol.current_for_clinic(patient.clinic)
    products = list(Product.objects.filter(clinic=patient.clinic, active=True).order_by("name"))
    form = forms.CourseForm(
        [(p.key, p.name) for p in protocols],
        list(Area.choices),
        request.POST or None,
        initial={"cadence_days": 7, "planned_sessions": 15},
        products=[(p.pk, _product_label(p)) for p in products],
    )
    if request.method == "POST" and form.is_valid():
        protocol = next(p for p in protocols if p.key == form.cleaned_data["protocol"])
        chosen = [p for p in products if p.pk in form.cleaned_data["products"]]
        try:
            course = actions.do_plan_course(
                patient,
                protocol,
                products=chosen or None,
                indication=protocol.spec.indications.v[0],
                areas=form.cleaned_data["areas"],
                cadence_days=form.cleaned_data["cadence_days"],
                planned_sessions=form.cleaned_data["planned_sessions"],
                first_session_on=form.cleaned_data["first_session_on"],
                user=request.user,
                via="web",
            )
        except ValidationError as exc:
            forms.put_errors(form, exc)
        else:
            messages.success(request, f"Course planned: {course.protocol.name}.")
            return redirect(chart_url(course))
    return render(
        request,
        "web/plan_course.html",
        {
            "page": "patients",
            "patient": patient,
            "form": form,
            "protocols": [(p, p.spec) for p in protocols],
        },
    )


def _product_label(product: Product) -> str:
    labels = product.indication_labels()
    return f"{product.name} ({', '.join(labels) if labels else 'any indication'})"


@login_required
@require_POST
def give_allergy_test(request: HttpRequest, course_id: int) -> HttpResponse:
    course = access_course(caller(request), course_id, CLINICAL)
    form = forms.AllergyTestForm(request.POST)
    if form.is_valid():
        lots = [_find_lot(course.clinic_id, form.cleaned_data[f"lot_{n}"]) for n in (1, 2)]
        for n, lot in enumerate(lots, start=1):
            if lot is None:
                form.add_error(f"lot_{n}", "No lot with this number in the clinic.")
        if form.is_valid():
            try:
                actions.do_give_allergy_test(
                    course,
                    given_at=form.cleaned_data["given_at"],
                    user=request.user,
                    via="web",
                    injections=[
                        actions.TestInjection(lot, form.cleaned_data[f"site_{n}"])  # type: ignore[arg-type]
                        for n, lot in enumerate(lots, start=1)
                    ],
                )
            except ValidationError as exc:
                forms.put_errors(form, exc)
    if form.errors:
        return chart_page(request, course.patient, bound={course.pk: form}, status=400)
    messages.success(request, "Allergy test recorded.")
    return redirect(chart_url(course))


@login_required
@require_POST
def read_allergy_test(request: HttpRequest, test_id: int) -> HttpResponse:
    test = access_allergy_test(caller(request), test_id, CLINICAL)
    form = forms.ReadingForm(request.POST)
    if form.is_valid():
        try:
            reading = actions.do_read_allergy_test(
                test,
                read_at=form.cleaned_data["read_at"],
                result=form.cleaned_data["result"],
                notes=form.cleaned_data["notes"],
                user=request.user,
                via="web",
            )
        except ValidationError as exc:
            forms.put_errors(form, exc)
        else:
            if reading.read_at < test.readable_from():
                messages.error(
                    request,
                    "Recorded, but read before the wait was over: "
                    "read it again from the time shown.",
                )
            else:
                messages.success(request, f"Reading recorded: {reading.get_result_display()}.")
    if form.errors:
        # Test ids are kept apart from course ids by their sign.
        return chart_page(request, test.course.patient, bound={-test.pk: form}, status=400)
    return redirect(chart_url(test.course))
