"""The JSON API, /api/v1/. Every endpoint fetches its object through one helper per kind,
which answers 404 for another clinic's object and 403 for a role that may not act."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Status
from ninja.errors import HttpError

from mesoclinic.access import (
    access_allergy_test,
    access_course,
    access_follow_up,
    access_lot,
    access_patient,
    access_product,
    access_session,
    access_side_effect,
    access_vial,
    audit_list,
    follow_ups_for,
    lots_for,
    members_for,
    products_for,
    vials_for,
)
from mesoclinic.accounts.models import AuditEvent, audit
from mesoclinic.api import problems
from mesoclinic.api import schemas as s
from mesoclinic.api.auth import ALL_STAFF, CLINICAL, MANAGER, BearerAuth, Caller, caller
from mesoclinic.api.openapi import DocumentedAPI
from mesoclinic.billing import money
from mesoclinic.courses import actions
from mesoclinic.courses.models import (
    Course,
    FollowUp,
    Session,
    SessionInjection,
    SideEffect,
)
from mesoclinic.courses.tracing import lot_exposures
from mesoclinic.formulary import stock
from mesoclinic.formulary.models import (
    AlreadyRecalled,
    Ingredient,
    Lot,
    Product,
    ProductIngredient,
    StockMovement,
    Vial,
)
from mesoclinic.patients import actions as patient_actions
from mesoclinic.patients import consent as consent_text
from mesoclinic.patients.models import Allergy, Patient, ScreeningForm
from mesoclinic.patients.records import find_duplicates, guardian_problems
from mesoclinic.patients.search import search
from mesoclinic.protocols.models import ClinicProtocol, do_edit_protocol
from mesoclinic.protocols.vocab import SEED_LABELS, Indication

api = DocumentedAPI(
    title="mesoclinic API",
    version="1",
    description=(
        "The clinic's JSON API. Get a token from POST /api/v1/auth/token and send "
        "`Authorization: Bearer <token>`. Errors are application/problem+json; a refused "
        "session is 409 with `reasons: [{code, message, overridable}]`."
    ),
    auth=BearerAuth(),
    urls_namespace="api",
)
problems.install(api)

# Signing in, out and the caller's own tokens (tokens.py), and the manager's audit trail.
from mesoclinic.api import audit as audit_endpoints  # noqa: E402
from mesoclinic.api import billing as billing_endpoints  # noqa: E402
from mesoclinic.api import staff as staff_endpoints  # noqa: E402
from mesoclinic.api import tokens  # noqa: E402

api.add_router("/auth", tokens.router)
api.add_router("/audit", audit_endpoints.router)
# The manager's list of staff and their licences (staff.py).
api.add_router("/staff", staff_endpoints.router)
# Money: prices, accounts, invoices, payments, credit notes, refunds, the daily close.
api.add_router("", billing_endpoints.router)


# Fetch helpers: tenancy and role checks live here and nowhere else.


def _lots(who: Caller, ids: list[int]) -> dict[int, Lot]:
    found = {lot.pk: lot for lot in lots_for(who).select_related("product").filter(pk__in=ids)}
    missing = sorted(set(ids) - set(found))
    if missing:
        raise ValidationError(
            {"injections": f"no lot with id {', '.join(map(str, missing))} in this clinic."}
        )
    return found


def _vials(who: Caller, ids: list[int | None]) -> dict[int, Vial]:
    """The opened vials named by the injections, of the caller's clinic."""
    wanted = {i for i in ids if i is not None}
    found = {v.pk: v for v in vials_for(who).select_related("lot__product").filter(pk__in=wanted)}
    missing = sorted(wanted - set(found))
    if missing:
        raise ValidationError(
            {"injections": f"no vial with id {', '.join(map(str, missing))} in this clinic."}
        )
    return found


def _ingredient(who: Caller, key: str) -> Ingredient:
    found = (
        Ingredient.objects.filter(key=key, clinic=who.clinic).first()
        or Ingredient.objects.filter(key=key, clinic=None).first()
    )
    if found is None:
        raise ValidationError({"ingredient": f"no ingredient with key {key!r}."})
    return found


# Serialisers.


def _course_out(course: Course) -> dict[str, Any]:
    tests = course.allergy_tests.prefetch_related("readings", "injections__lot__product")
    sessions = course.sessions.prefetch_related(
        Prefetch("injections", queryset=SessionInjection.objects.select_related("lot__product"))
    )
    return {
        "id": course.pk,
        "patient": course.patient_id,
        "protocol": course.protocol.key,
        "protocol_version": course.protocol.version,
        "indication": course.indication,
        "areas": course.areas,
        "cadence_days": course.cadence_days,
        "status": course.status,
        "products": [{"id": p.pk, "name": p.name} for p in course.products.all()],
        **course.progress(),
        "allergy_tests": [
            {
                "id": t.pk,
                "given_at": t.given_at,
                "readable_from": t.readable_from(),
                "injections": [
                    {
                        "lot": i.lot_id,
                        "lot_number": i.lot.lot_number,
                        "product": i.lot.product.name,
                        "site": i.site,
                    }
                    for i in t.injections.all()
                ],
                "readings": [
                    {"read_at": r.read_at, "result": r.result, "notes": r.notes}
                    for r in t.readings.all()
                ],
            }
            for t in tests
        ],
        "sessions": [
            {
                "id": x.pk,
                "number": x.number,
                "kind": x.kind,
                "performed_at": x.performed_at,
                "areas": sorted({i.area for i in x.injections.all()}),
            }
            for x in sessions
        ],
        "plan": course.plan(),
    }


def _session_out(session: Session) -> dict[str, Any]:
    injections = list(session.injections.select_related("lot__product", "vial"))
    warnings = []
    if not session.stimulants_avoided:
        warnings.append(
            "The patient had caffeine or a stimulant today; the article "
            f"“{SEED_LABELS['004_775ed0aecb2fac00.txt']}” advises against it."
        )
    return {
        "id": session.pk,
        "course": session.course_id,
        "number": session.number,
        "kind": session.kind,
        "performed_at": session.performed_at,
        "practitioner": session.practitioner_id,
        "areas": sorted({i.area for i in injections}),
        "injections": [
            {
                "area": i.area,
                "lot": i.lot_id,
                "lot_number": i.lot.lot_number,
                "product": i.lot.product.name,
                "vial": i.vial_id,
                "vial_number": i.vial.number if i.vial else None,
                "volume_ml": str(i.volume_ml),
                "technique": i.technique,
            }
            for i in injections
        ],
        "override_codes": session.override_codes,
        "aftercare": session.aftercare(),
        "warnings": warnings,
    }


def _side_effect_out(effect: SideEffect) -> dict[str, Any]:
    follow_up = effect.follow_ups.filter(status=FollowUp.Status.OPEN).first()
    return {
        "id": effect.pk,
        "session": effect.session_id,
        "kind": effect.kind,
        "grade": effect.grade,
        "onset_at": effect.onset_at,
        "resolved_at": effect.resolved_at,
        "expected_until": effect.expected_until,
        "status": effect.status,
        "follow_up": follow_up.pk if follow_up else None,
    }


def _patient_out(patient: Patient) -> dict[str, Any]:
    screening = patient.screenings.order_by("-screened_at", "-id").first()
    return {
        "id": patient.pk,
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "date_of_birth": patient.date_of_birth,
        "sex": patient.sex,
        "email": patient.email,
        "phone": patient.phone,
        "address": patient.address,
        "sms_consent": patient.sms_consent,
        "sms_consent_at": patient.sms_consent_at,
        "allergies": [
            {
                "ingredient": a.ingredient.key if a.ingredient else None,
                "name": a.what,
                "reaction": a.reaction,
            }
            # An allergy marked as entered in error is no longer one.
            for a in patient.allergies.select_related("ingredient").standing()
        ],
        "latest_screening": None
        if screening is None
        else {
            "id": screening.pk,
            "result": screening.result,
            "reasons": screening.reasons,
            "screened_at": screening.screened_at,
        },
        "consents": [
            {
                "id": c.pk,
                "template_version": c.template.version,
                "signed_at": c.signed_at,
                "signed_name": c.signed_name,
                "method": c.method,
            }
            for c in patient.consents.select_related("template")
        ],
        "courses": [
            {"id": c.pk, "protocol": c.protocol.key, "status": c.status}
            for c in patient.courses.select_related("protocol")
        ],
    }


# Authentication: the token endpoints live in tokens.py.


# Protocols.


def _protocol_summary(p: ClinicProtocol) -> dict[str, Any]:
    spec = p.spec
    return {
        "key": p.key,
        "name": p.name,
        "version": p.version,
        "summary": spec.summary,
        "indications": spec.indications.v,
        "areas": spec.areas.v,
        "sessions": {"min": spec.sessions.v.min, "max": spec.sessions.v.max},
        "cadence_days": spec.cadence.days.v,
        "document": p.document,
    }


@api.get("/protocols", tags=["protocols"])
def list_protocols(request: HttpRequest) -> list[dict[str, Any]]:
    """The clinic's current version of each protocol, with every fact and its source."""
    who = caller(request)
    who.require(ALL_STAFF)
    return [_protocol_summary(p) for p in ClinicProtocol.current_for_clinic(who.clinic)]


@api.get("/protocols/{key}", tags=["protocols"])
def get_protocol(request: HttpRequest, key: str) -> dict[str, Any]:
    who = caller(request)
    who.require(ALL_STAFF)
    current = ClinicProtocol.current(who.clinic, key)
    if current is None:
        raise Http404(f"No protocol {key!r} in this clinic.")
    out = _protocol_summary(current)
    out["versions"] = [
        {"version": v.version, "created_at": v.created_at, "change_note": v.note}
        for v in ClinicProtocol.objects.filter(clinic=who.clinic, key=key)
    ]
    return out


@api.put("/protocols/{key}", tags=["protocols"])
def edit_protocol(request: HttpRequest, key: str, payload: s.ProtocolEditIn) -> dict[str, Any]:
    """Save an edited copy as the clinic's next version. Courses keep the version they had."""
    who = caller(request)
    who.require(MANAGER)
    if ClinicProtocol.current(who.clinic, key) is None:
        raise Http404(f"No protocol {key!r} in this clinic.")
    new = do_edit_protocol(who.clinic, key, payload.document, who.user, payload.change_note)
    audit(
        clinic=who.clinic,
        user=who.user,
        action=AuditEvent.Action.UPDATE,
        obj=new,
        version=new.version,
        note=payload.change_note,
    )
    return _protocol_summary(new)


# Patients.


@api.post("/patients", response={201: s.PatientOut}, tags=["patients"])
def create_patient(request: HttpRequest, payload: s.PatientIn) -> Status[dict[str, Any]]:
    who = caller(request)
    who.require(ALL_STAFF)
    values = payload.dict()
    allow_duplicate = values.pop("allow_duplicate")
    today = timezone.localdate(timezone.now(), who.clinic.tz)
    problems = guardian_problems(values, today)
    if problems:
        raise ValidationError(problems)
    if not allow_duplicate:
        refused = _duplicates_refused(who, values)
        if refused is not None:
            return refused  # type: ignore[return-value]
    with transaction.atomic():
        patient = Patient(clinic=who.clinic, **values)
        patient.full_clean()
        patient.save()
        audit(
            clinic=who.clinic,
            user=who.user,
            action=AuditEvent.Action.CREATE,
            obj=patient,
            patient_id=patient.pk,
        )
    return Status(201, _patient_out(patient))


def _duplicates_refused(who: Any, values: dict[str, Any]) -> HttpResponse | None:
    """409 naming the clinic's patients the new one may be, or None when there are none."""
    found = find_duplicates(
        who.clinic,
        **{k: values[k] for k in ("first_name", "last_name", "date_of_birth", "phone", "email")},
    )
    if not found:
        return None
    audit_list(who, "possible duplicates", [d.patient.pk for d in found])
    return problems.problem(
        409,
        "A patient of the clinic may be the same person: "
        + "; ".join(f"#{d.patient.pk} ({', '.join(d.reasons)})" for d in found)
        + ". Send allow_duplicate true to register anyway.",
        type_="/api/v1/problems/possible-duplicate",
        duplicates=[
            {
                "id": d.patient.pk,
                "first_name": d.patient.first_name,
                "last_name": d.patient.last_name,
                "date_of_birth": d.patient.date_of_birth,
                "matched": d.reasons,
            }
            for d in found
        ],
    )


@api.get("/patients", tags=["patients"])
def search_patients(request: HttpRequest, q: str = "") -> list[dict[str, Any]]:
    """Find patients by name, phone, email or date of birth (YYYY-MM-DD)."""
    who = caller(request)
    who.require(ALL_STAFF)
    qs = search(who.clinic, q)
    audit(
        clinic=who.clinic,
        user=who.user,
        action=AuditEvent.Action.VIEW,
        object_type="patients.Patient",
        query=q,
    )
    found = list(qs[:50])
    audit_list(who, "patient search", [p.pk for p in found], query=q)
    return [
        {
            "id": p.pk,
            "first_name": p.first_name,
            "last_name": p.last_name,
            "date_of_birth": p.date_of_birth,
            "phone": p.phone,
            "email": p.email,
        }
        for p in found
    ]


@api.get("/patients/{patient_id}", response=s.PatientOut, tags=["patients"])
def get_patient(request: HttpRequest, patient_id: int) -> dict[str, Any]:
    patient = access_patient(caller(request), patient_id, ALL_STAFF)
    who = caller(request)
    audit(
        clinic=who.clinic,
        user=who.user,
        action=AuditEvent.Action.VIEW,
        obj=patient,
        patient_id=patient.pk,
    )
    return _patient_out(patient)


@api.post("/patients/{patient_id}/allergies", response={201: dict}, tags=["patients"])
def add_allergy(
    request: HttpRequest, patient_id: int, payload: s.AllergyIn
) -> Status[dict[str, Any]]:
    patient = access_patient(caller(request), patient_id, CLINICAL)
    who = caller(request)
    ingredient = _ingredient(who, payload.ingredient)
    with transaction.atomic():
        # An allergy marked as entered in error stays as it is; a new one is recorded.
        allergy, _ = Allergy.objects.update_or_create(
            patient=patient,
            ingredient=ingredient,
            entered_in_error_at=None,
            defaults={"reaction": payload.reaction},
        )
        audit(
            clinic=who.clinic,
            user=who.user,
            action=AuditEvent.Action.CREATE,
            obj=allergy,
            patient_id=patient.pk,
            ingredient=ingredient.key,
        )
    return Status(
        201, {"id": allergy.pk, "ingredient": ingredient.key, "reaction": allergy.reaction}
    )


@api.get("/screening-form", tags=["patients"])
def screening_form(request: HttpRequest) -> dict[str, Any]:
    """The clinic's current screening questionnaire: keys, questions and what a yes means."""
    who = caller(request)
    who.require(ALL_STAFF)
    form = ScreeningForm.current(who.clinic)
    # The stored form's version wins over the `version` written inside its document, which
    # stays at the file's version when a clinic saves an edited copy.
    return {**form.document, "version": form.version}


@api.post("/patients/{patient_id}/screenings", response={201: s.ScreeningOut}, tags=["patients"])
def screen_patient(
    request: HttpRequest, patient_id: int, payload: s.ScreeningIn
) -> Status[dict[str, Any]]:
    patient = access_patient(caller(request), patient_id, CLINICAL)
    screening = patient_actions.do_screen_patient(
        patient, payload.answers, caller(request).user, screened_at=payload.screened_at
    )
    return Status(
        201,
        {
            "id": screening.pk,
            "result": screening.result,
            "reasons": screening.reasons,
            "form_version": screening.form.version,
            "screened_at": screening.screened_at,
        },
    )


def _consent_use(
    request: HttpRequest, patient: Patient, course_id: int | None
) -> tuple[str, list[str]]:
    if course_id is None:
        return "", []
    course = access_course(caller(request), course_id, CLINICAL)
    if course.patient_id != patient.pk:
        raise ValidationError({"course": "is not this patient's course."})
    return course.indication, list(course.areas)


@api.get("/patients/{patient_id}/consent-text", tags=["patients"])
def preview_consent(
    request: HttpRequest, patient_id: int, course: int | None = None, products: str = ""
) -> dict[str, Any]:
    """The exact text the patient will sign, with each product's regulatory status."""
    patient = access_patient(caller(request), patient_id, CLINICAL, view=True)
    ids = _id_list(products, "products")
    chosen = _consent_products(patient, ids)
    indication, areas = _consent_use(request, patient, course)
    template = consent_text.current_template(patient.clinic)
    return {
        "template_version": template.version,
        "products": [p.pk for p in chosen],
        "text": consent_text.render(template, chosen, indication or None, areas),
    }


def _id_list(raw: str, field: str) -> list[int] | None:
    if not raw.strip():
        return None
    try:
        ids = [int(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        raise ValidationError({field: "must be a comma-separated list of ids."}) from None
    # A number past the largest key overflows the database driver rather than matching nothing.
    if any(not 1 <= i <= s.MAX_ID for i in ids):
        raise ValidationError({field: f"ids are between 1 and {s.MAX_ID}."})
    return ids


def _consent_products(patient: Patient, ids: list[int] | None) -> list[Product]:
    try:
        chosen = patient_actions.consent_products(patient, ids)
    except ValueError as exc:
        raise ValidationError({"products": str(exc)}) from None
    if not chosen:
        raise ValidationError({"products": "the clinic has no active product to consent to."})
    return chosen


@api.post("/patients/{patient_id}/consents", response={201: s.ConsentOut}, tags=["patients"])
def sign_consent(
    request: HttpRequest, patient_id: int, payload: s.ConsentIn
) -> Status[dict[str, Any]]:
    patient = access_patient(caller(request), patient_id, CLINICAL)
    if payload.method == "drawn" and not payload.signature:
        raise ValidationError({"signature": "a drawn consent needs the signature."})
    if payload.signed_at is not None:
        actions.not_future(payload.signed_at, "signed_at")
    chosen = _consent_products(patient, payload.products)
    indication, areas = _consent_use(request, patient, payload.course)
    consent = patient_actions.do_sign_consent(
        patient,
        products=chosen,
        signed_name=payload.signed_name,
        method=payload.method,
        signature=payload.signature,
        signed_at=payload.signed_at,
        indication=indication,
        areas=areas,
        user=caller(request).user,
    )
    return Status(
        201,
        {
            "id": consent.pk,
            "template_version": consent.template.version,
            "signed_name": consent.signed_name,
            "signed_at": consent.signed_at,
            "method": consent.method,
            "products": [p.pk for p in chosen],
            "text_sha256": consent.text_sha256,
        },
    )


# Courses.


@api.post("/patients/{patient_id}/courses", response={201: s.CourseOut}, tags=["courses"])
def plan_course(
    request: HttpRequest, patient_id: int, payload: s.CourseIn
) -> Status[dict[str, Any]]:
    patient = access_patient(caller(request), patient_id, CLINICAL)
    protocol = ClinicProtocol.current(patient.clinic, payload.protocol)
    if protocol is None:
        raise ValidationError({"protocol": f"no protocol {payload.protocol!r} in this clinic."})
    course = actions.do_plan_course(
        patient,
        protocol,
        indication=payload.indication or protocol.spec.indications.v[0],
        areas=payload.areas,
        cadence_days=payload.cadence_days,
        planned_sessions=payload.planned_sessions,
        first_session_on=payload.first_session_on,
        products=_products(caller(request), payload.products),
        user=caller(request).user,
    )
    return Status(201, _course_out(course))


def _products(who: Caller, ids: list[int] | None) -> list[Product] | None:
    """The clinic's products by id, through the access layer; None stays None (the default)."""
    if ids is None:
        return None
    found = {p.pk: p for p in products_for(who).filter(pk__in=ids)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise ValidationError({"products": f"no product {missing[0]} in this clinic."})
    return [found[i] for i in dict.fromkeys(ids)]


@api.get("/courses/{course_id}", response=s.CourseOut, tags=["courses"])
def get_course(request: HttpRequest, course_id: int) -> dict[str, Any]:
    course = access_course(caller(request), course_id, ALL_STAFF)
    who = caller(request)
    audit(
        clinic=who.clinic,
        user=who.user,
        action=AuditEvent.Action.VIEW,
        obj=course,
        patient_id=course.patient_id,
    )
    return _course_out(course)


@api.post("/courses/{course_id}/stop", response=s.CourseOut, tags=["courses"])
def stop_course(request: HttpRequest, course_id: int, payload: s.StopIn) -> dict[str, Any]:
    course = access_course(caller(request), course_id, CLINICAL)
    actions.do_stop_course(course, payload.reason, caller(request).user)
    return _course_out(course)


@api.post("/courses/{course_id}/allergy-tests", response={201: dict}, tags=["courses"])
def give_allergy_test(
    request: HttpRequest, course_id: int, payload: s.AllergyTestIn
) -> Status[dict[str, Any]]:
    course = access_course(caller(request), course_id, CLINICAL)
    who = caller(request)
    lots = _lots(who, [i.lot for i in payload.injections])
    vials = _vials(who, [i.vial for i in payload.injections])
    test = actions.do_give_allergy_test(
        course,
        given_at=payload.given_at,
        notes=payload.notes,
        user=who.user,
        injections=[
            actions.TestInjection(
                lots[i.lot], i.site, i.given_at, vials.get(i.vial or 0), i.volume_ml
            )
            for i in payload.injections
        ],
    )
    return Status(
        201, {"id": test.pk, "given_at": test.given_at, "readable_from": test.readable_from()}
    )


@api.post("/allergy-tests/{test_id}/reading", tags=["courses"])
def read_allergy_test(
    request: HttpRequest, test_id: int, payload: s.AllergyReadingIn
) -> dict[str, Any]:
    test = access_allergy_test(caller(request), test_id, CLINICAL)
    reading = actions.do_read_allergy_test(
        test,
        read_at=payload.read_at,
        result=payload.result,
        notes=payload.notes,
        user=caller(request).user,
    )
    early = reading.read_at < test.readable_from()
    return {
        "id": test.pk,
        "reading": reading.pk,
        "read_at": reading.read_at,
        "result": reading.result,
        "readable_from": test.readable_from(),
        "read_too_early": early,
    }


@api.get("/courses/{course_id}/session-check", response=s.CheckOut, tags=["courses"])
def session_check(
    request: HttpRequest,
    course_id: int,
    performed_at: str = "",
    lots: str = "",
    practitioner: int | None = None,
) -> dict[str, Any]:
    """Every reason a session may not go ahead now (or at `performed_at`), before it starts."""
    import datetime as dt

    from django.utils import timezone

    course = access_course(caller(request), course_id, CLINICAL, view=True)
    who = caller(request)
    when = timezone.now()
    if performed_at:
        try:
            when = dt.datetime.fromisoformat(performed_at)
        except ValueError:
            raise ValidationError({"performed_at": "must be an ISO 8601 date-time."}) from None
        if when.tzinfo is None:
            raise ValidationError({"performed_at": "must include a time zone offset."})
        try:
            s.check_plausible_year(when)
        except ValueError as exc:
            raise ValidationError({"performed_at": str(exc)}) from None
    lot_map = _lots(who, _id_list(lots, "lots") or [])
    doer = _practitioner(who, practitioner)
    found = actions.check_session(course, when, doer, list(lot_map.values()))
    return {"may_proceed": not found, "reasons": [r.as_dict() for r in found]}


def _practitioner(who: Caller, user_id: int | None) -> Any:
    if user_id is None or user_id == who.user.pk:
        return who.user
    if not 1 <= user_id <= s.MAX_ID:
        raise ValidationError({"practitioner": "is not a practitioner of this clinic."})
    membership = (
        members_for(who, ALL_STAFF)
        .select_related("user")
        .filter(user_id=user_id, role__in=CLINICAL)
        .first()
    )
    if membership is None:
        raise ValidationError({"practitioner": "is not a practitioner of this clinic."})
    return membership.user


@api.post(
    "/courses/{course_id}/sessions",
    response={201: s.SessionOut, 409: s.RefusedOut},
    tags=["courses"],
)
def record_session(
    request: HttpRequest, course_id: int, payload: s.SessionIn
) -> Status[dict[str, Any]]:
    course = access_course(caller(request), course_id, CLINICAL)
    who = caller(request)
    lots = _lots(who, [i.lot for i in payload.injections])
    vials = _vials(who, [i.vial for i in payload.injections])
    session = actions.do_record_session(
        course,
        performed_at=payload.performed_at,
        practitioner=_practitioner(who, payload.practitioner),
        injections=[
            actions.InjectionInput(
                i.area, lots[i.lot], i.volume_ml, i.technique, vials.get(i.vial or 0)
            )
            for i in payload.injections
        ],
        stimulants_avoided=payload.stimulants_avoided,
        numbing_cream=payload.numbing_cream,
        burning_minutes=payload.burning_minutes,
        discomfort_minutes=payload.discomfort_minutes,
        notes=payload.notes,
        override_codes=payload.override_codes,
        override_reason=payload.override_reason,
        user=who.user,
    )
    return Status(201, _session_out(session))


@api.get("/sessions/{session_id}", response=s.SessionOut, tags=["courses"])
def get_session(request: HttpRequest, session_id: int) -> dict[str, Any]:
    session = access_session(caller(request), session_id, ALL_STAFF)
    who = caller(request)
    audit(
        clinic=who.clinic,
        user=who.user,
        action=AuditEvent.Action.VIEW,
        obj=session,
        patient_id=session.course.patient_id,
    )
    return _session_out(session)


@api.post(
    "/sessions/{session_id}/side-effects", response={201: s.SideEffectOut}, tags=["side effects"]
)
def report_side_effect(
    request: HttpRequest, session_id: int, payload: s.SideEffectIn
) -> Status[dict[str, Any]]:
    session = access_session(caller(request), session_id, CLINICAL)
    effect = actions.do_report_side_effect(
        session,
        kind=payload.kind,
        onset_at=payload.onset_at,
        resolved_at=payload.resolved_at,
        grade=payload.grade,
        description=payload.description,
        user=caller(request).user,
    )
    return Status(201, _side_effect_out(effect))


@api.post("/side-effects/{effect_id}/resolve", response=s.SideEffectOut, tags=["side effects"])
def resolve_side_effect(
    request: HttpRequest, effect_id: int, payload: s.ResolveIn
) -> dict[str, Any]:
    effect = access_side_effect(caller(request), effect_id, CLINICAL)
    actions.do_resolve_side_effect(effect, payload.resolved_at, caller(request).user)
    return _side_effect_out(effect)


@api.get("/follow-ups", tags=["side effects"])
def list_follow_ups(request: HttpRequest, status: str = "open") -> list[dict[str, Any]]:
    """Follow-up tasks, urgent first."""
    who = caller(request)
    who.require(CLINICAL)
    actions.do_sweep_side_effects()
    qs = follow_ups_for(who).select_related("session__course__patient")
    if status != "all":
        qs = qs.filter(status=status)
    found = list(qs)
    audit_list(who, "follow-ups", [f.session.course.patient_id for f in found])
    return [
        {
            "id": f.pk,
            "priority": f.priority,
            "reason": f.reason,
            "status": f.status,
            "opened_at": f.opened_at,
            "side_effect": f.side_effect_id,
            "patient": f.session.course.patient_id,
            "patient_name": str(f.session.course.patient),
        }
        for f in found
    ]


@api.post("/follow-ups/{follow_up_id}/close", tags=["side effects"])
def close_follow_up(request: HttpRequest, follow_up_id: int, payload: s.CloseIn) -> dict[str, Any]:
    who = caller(request)
    follow_up = access_follow_up(who, follow_up_id, CLINICAL)
    actions.do_close_follow_up(follow_up, payload.outcome, who.user, resolution=payload.resolution)
    return {"id": follow_up.pk, "status": follow_up.status, "closed_at": follow_up.closed_at}


# Formulary.


@api.get("/ingredients", tags=["formulary"])
def list_ingredients(request: HttpRequest) -> list[dict[str, Any]]:
    who = caller(request)
    who.require(ALL_STAFF)
    from django.db.models import Q

    return [
        {
            "key": i.key,
            "name": i.name,
            "class": i.klass,
            "fda_status": i.fda_status,
            "approved_use": i.approved_use,
            "reference": i.reference,
        }
        for i in Ingredient.objects.filter(Q(clinic=None) | Q(clinic=who.clinic))
    ]


def _product_out(p: Product) -> dict[str, Any]:
    return {
        "id": p.pk,
        "name": p.name,
        "supplier": p.supplier,
        "vial": p.vial,
        "vial_ml": str(p.vial_ml),
        "beyond_use_days": p.beyond_use_days,
        "reorder_vials": p.reorder_vials,
        "active": p.active,
        "indications": p.indications,
        "components": [
            {"ingredient": c.ingredient.key, "concentration": str(c.concentration), "unit": c.unit}
            for c in p.components.select_related("ingredient")
        ],
        "lots": [_lot_out(lot) for lot in p.lots.all()],
    }


def _lot_out(lot: Lot) -> dict[str, Any]:
    return {
        "id": lot.pk,
        "product": lot.product_id,
        "lot_number": lot.lot_number,
        "expires_on": lot.expires_on,
        "received_on": lot.received_on,
        "recalled": lot.recalled,
        "recall_reason": lot.recall_reason,
    }


@api.get("/products", tags=["formulary"])
def list_products(request: HttpRequest) -> list[dict[str, Any]]:
    who = caller(request)
    who.require(ALL_STAFF)
    return [_product_out(p) for p in products_for(who)]


@api.post("/products", response={201: dict}, tags=["formulary"])
def create_product(request: HttpRequest, payload: s.ProductIn) -> Status[dict[str, Any]]:
    who = caller(request)
    who.require(MANAGER)
    if Product.objects.filter(clinic=who.clinic, name=payload.name).exists():
        raise ValidationError({"name": "the clinic already has a product with this name."})
    keys = [c.ingredient for c in payload.components]
    if len(set(keys)) != len(keys):
        raise ValidationError({"components": "an ingredient is listed twice."})
    with transaction.atomic():
        unknown = [i for i in payload.indications if i not in Indication.values]
        if unknown:
            raise ValidationError({"indications": f"no indication {unknown[0]!r}."})
        product = Product.objects.create(
            clinic=who.clinic,
            name=payload.name,
            supplier=payload.supplier,
            vial=payload.vial,
            indications=list(dict.fromkeys(payload.indications)),
        )
        for c in payload.components:
            ProductIngredient.objects.create(
                product=product,
                ingredient=_ingredient(who, c.ingredient),
                concentration=c.concentration,
                unit=c.unit,
            )
        audit(clinic=who.clinic, user=who.user, action=AuditEvent.Action.CREATE, obj=product)
    return Status(201, _product_out(product))


@api.post("/products/{product_id}/lots", response={201: dict}, tags=["formulary"])
def receive_lot(request: HttpRequest, product_id: int, payload: s.LotIn) -> Status[dict[str, Any]]:
    product = access_product(caller(request), product_id, MANAGER)
    who = caller(request)
    if product.lots.filter(lot_number=payload.lot_number).exists():
        raise ValidationError({"lot_number": "this product already has a lot with this number."})
    with transaction.atomic():
        lot = Lot(product=product, lot_number=payload.lot_number, expires_on=payload.expires_on)
        if payload.received_on:
            lot.received_on = payload.received_on
        lot.save()
        audit(clinic=who.clinic, user=who.user, action=AuditEvent.Action.CREATE, obj=lot)
    return Status(201, _lot_out(lot))


@api.get("/lots", tags=["formulary"])
def list_lots(request: HttpRequest, number: str = "") -> list[dict[str, Any]]:
    """Lots of the clinic; `number` finds a typed or scanned lot number."""
    who = caller(request)
    who.require(ALL_STAFF)
    qs = lots_for(who).select_related("product")
    if number.strip():
        qs = qs.filter(lot_number__iexact=number.strip())
    return [{**_lot_out(lot), "product_name": lot.product.name} for lot in qs]


@api.post("/lots/{lot_id}/recall", tags=["formulary"])
def recall_lot(request: HttpRequest, lot_id: int, payload: s.RecallIn) -> dict[str, Any]:
    lot = access_lot(caller(request), lot_id, MANAGER)
    who = caller(request)
    with transaction.atomic():
        try:
            lot.do_recall(payload.reason, who.user)
        except AlreadyRecalled as exc:
            raise HttpError(409, str(exc)) from None
        audit(
            clinic=who.clinic,
            user=who.user,
            action=AuditEvent.Action.UPDATE,
            obj=lot,
            recalled=True,
            reason=payload.reason,
        )
    return {**_lot_out(lot), "patients": _lot_patients(lot)}


def _vial_out(vial: Vial, left_ml: Decimal | None = None) -> dict[str, Any]:
    return {
        "id": vial.pk,
        "lot": vial.lot_id,
        "number": vial.number,
        "single_dose": vial.single_dose,
        "opened_at": vial.opened_at,
        "beyond_use_at": vial.beyond_use_at,
        "closed_at": vial.closed_at,
        "closed_reason": vial.closed_reason,
        "left_ml": None if left_ml is None else str(left_ml),
    }


def _stock_out(lot: Lot) -> dict[str, Any]:
    found = stock.on_hand([lot])[lot.pk]
    return {
        "lot": lot.pk,
        "product": lot.product.name,
        "lot_number": lot.lot_number,
        "unopened_vials": found.unopened,
        "ml": str(found.ml),
        "low": found.low,
        "open_vials": [_vial_out(o.vial, o.left_ml) for o in found.open_vials],
    }


@api.get("/lots/{lot_id}/stock", tags=["formulary"])
def lot_stock(request: HttpRequest, lot_id: int) -> dict[str, Any]:
    """What is left of a lot: unopened vials, mL on hand, and each open vial."""
    return _stock_out(access_lot(caller(request), lot_id, ALL_STAFF))


@api.post("/lots/{lot_id}/stock", response={201: dict}, tags=["formulary"])
def change_stock(request: HttpRequest, lot_id: int, payload: s.StockIn) -> Status[dict[str, Any]]:
    """Vials received, mL wasted, or a count of the unopened vials on the shelf."""
    lot = access_lot(caller(request), lot_id, MANAGER)
    who = caller(request)
    moved: StockMovement | None
    with transaction.atomic():
        if payload.kind == "received":
            if not payload.vials:
                raise ValidationError({"vials": "say how many vials came in."})
            moved = stock.receive(
                lot,
                payload.vials,
                user=who.user,
                reason=payload.reason,
                vial_cost=payload.vial_cost,
            )
        elif payload.vial_cost is not None:
            raise ValidationError({"vial_cost": "only a delivery has a cost."})
        elif payload.kind == "waste":
            if not payload.ml:
                raise ValidationError({"ml": "say how many mL were wasted."})
            moved = stock.record_waste(lot, payload.ml, payload.reason, user=who.user)
        else:
            if payload.vials is None:
                raise ValidationError({"vials": "say how many unopened vials were counted."})
            moved = stock.record_count(lot, payload.vials, payload.reason, user=who.user)
        audit(
            clinic=who.clinic,
            user=who.user,
            action=AuditEvent.Action.UPDATE,
            obj=lot,
            stock=payload.kind,
            vials=moved.vials if moved else 0,
            ml=str(moved.ml) if moved else "0",
            vial_cost=str(moved.vial_cost) if moved and moved.vial_cost is not None else None,
        )
    return Status(201, _stock_out(lot))


def _money(amount: Decimal | None, currency: str) -> str | None:
    """An amount as text, to the currency's minor unit ("450.00", "1100" in yen)."""
    return None if amount is None else str(money.rounded(amount, currency))


@api.get("/stock", tags=["formulary"])
def stock_value(request: HttpRequest) -> dict[str, Any]:
    """Managers: each product's usable stock (lots in date and not recalled) and its value at
    the cost its deliveries recorded: unopened vials at a vial's cost, open vials at their
    share of it for the mL left (none once past their beyond-use time)."""
    who = caller(request)
    products = products_for(who, MANAGER)
    found = stock.value(who.clinic, products, timezone.now())
    c = found.currency
    return {
        "currency": c,
        "value": _money(found.total, c),
        "lots_without_cost": found.uncosted,
        "products": [
            {
                "product": row.product.pk,
                "name": row.product.name,
                "unopened_vials": row.unopened,
                "ml_in_open_vials": str(row.open_ml),
                "value": _money(row.value, c),
                "reorder_vials": row.product.reorder_vials,
                "low": row.low,
                "lots": [
                    {
                        "lot": v.lot.pk,
                        "lot_number": v.lot.lot_number,
                        "expires_on": v.lot.expires_on,
                        "counted": v.counted,
                        "unopened_vials": v.stock.unopened,
                        "ml_in_open_vials": str(v.open_ml),
                        "vial_cost": _money(v.vial_cost, c),
                        "value": _money(v.value, c),
                    }
                    for v in row.lots
                ],
            }
            for row in found.products
        ],
    }


@api.post("/lots/{lot_id}/vials", response={201: dict}, tags=["formulary"])
def open_vial(request: HttpRequest, lot_id: int) -> Status[dict[str, Any]]:
    """Open the next vial of a lot; a multi-dose vial's beyond-use time starts now."""
    lot = access_lot(caller(request), lot_id, CLINICAL)
    who = caller(request)
    with transaction.atomic():
        vial = stock.open_vial(lot, user=who.user)
        audit(clinic=who.clinic, user=who.user, action=AuditEvent.Action.CREATE, obj=vial)
    return Status(201, _vial_out(vial, lot.product.vial_ml))


@api.post("/vials/{vial_id}/close", tags=["formulary"])
def close_vial(request: HttpRequest, vial_id: int, payload: s.VialCloseIn) -> dict[str, Any]:
    """Close an opened vial: used up, or thrown away with what is left as waste."""
    vial = access_vial(caller(request), vial_id, CLINICAL)
    who = caller(request)
    with transaction.atomic():
        stock.close_vial(vial, payload.reason, note=payload.note, user=who.user)
        audit(
            clinic=who.clinic,
            user=who.user,
            action=AuditEvent.Action.UPDATE,
            obj=vial,
            closed=payload.reason,
        )
    return _vial_out(vial)


def _lot_patients(lot: Lot) -> list[dict[str, Any]]:
    """Every patient who received the lot, in a session or an allergy test."""
    return lot_exposures(lot)


@api.get("/lots/{lot_id}/patients", tags=["formulary"])
def lot_patients(request: HttpRequest, lot_id: int) -> dict[str, Any]:
    """Every patient who received this lot, with contact details, for a recall or an outbreak."""
    lot = access_lot(caller(request), lot_id, CLINICAL)
    who = caller(request)
    patients = _lot_patients(lot)
    audit(
        clinic=who.clinic,
        user=who.user,
        action=AuditEvent.Action.EXPORT,
        obj=lot,
        patients=[p["id"] for p in patients],
    )
    audit_list(
        who,
        "lot patients",
        [p["id"] for p in patients],
        action=AuditEvent.Action.EXPORT,
        lot=lot.pk,
    )
    return {"lot": _lot_out(lot), "patients": patients}
