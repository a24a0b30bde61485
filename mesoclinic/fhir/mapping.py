"""One function per FHIR R4B resource, from the models that hold it.

Each function takes one row (already fetched through the access layer) and returns the
resource as FHIR JSON: a plain dict, served as it is built. fhir.resources' R4B models check
every resource the tests are served (`checked`, on when the FHIR_VALIDATE setting is), and
the tests check each function's output with them; validating each resource again on every
request cost more than the rest of a search together (docs/benchmarks.md). The codes: LOINC
only where SPEC gives one (a measurement's stored `loinc`), SNOMED CT where a clinician
entered a concept id, and otherwise the local code systems under `BASE` below, one per kind
of thing, named in docs/fhir.md.
"""

from __future__ import annotations

import base64
import hashlib
from decimal import Decimal
from typing import Any

from django.conf import settings
from fhir.resources.R4B import get_fhir_model_class

from mesoclinic.accounts.models import Clinic, Membership, PractitionerLicence
from mesoclinic.courses.models import AllergyReading, Course, Session, SessionInjection, SideEffect
from mesoclinic.formulary.models import Lot
from mesoclinic.outcomes.models import Measurement, Photo
from mesoclinic.patients.models import Allergy, Consent, Patient, Screening, ScreeningForm
from mesoclinic.safety.models import AdverseEvent
from mesoclinic.scheduling.models import Appointment, Room

# The product's own code systems live under one address; one constant, so that a clinic's
# data reads the same wherever it is exported.
BASE = "https://mesoclinic.example/fhir"
MEASUREMENT_SYSTEM = f"{BASE}/CodeSystem/measurement"
AREA_SYSTEM = f"{BASE}/CodeSystem/area"
ROLE_SYSTEM = f"{BASE}/CodeSystem/role"
LICENCE_SYSTEM = f"{BASE}/CodeSystem/licence-kind"
PROCEDURE_SYSTEM = f"{BASE}/CodeSystem/procedure"
VISIT_SYSTEM = f"{BASE}/CodeSystem/visit-kind"
SIDE_EFFECT_SYSTEM = f"{BASE}/CodeSystem/side-effect"
EVENT_KIND_SYSTEM = f"{BASE}/CodeSystem/adverse-event-kind"
TECHNIQUE_SYSTEM = f"{BASE}/CodeSystem/technique"
SCREENING_RESULT_SYSTEM = f"{BASE}/CodeSystem/screening-result"
PHOTO_SYSTEM = f"{BASE}/CodeSystem/photo"
CONSENT_SHA256 = f"{BASE}/NamingSystem/consent-text-sha256"
PHOTO_SHA256 = f"{BASE}/NamingSystem/photo-sha256"
# A clinic's screening questionnaire is one canonical, `…/Questionnaire/screening-<clinic>`,
# with a version per edit; the extensions carry what the product decides from the answers.
QUESTIONNAIRE_URL = f"{BASE}/Questionnaire/screening"
WHEN_YES_EXTENSION = f"{BASE}/StructureDefinition/screening-when-yes"
RESULT_EXTENSION = f"{BASE}/StructureDefinition/screening-result"
REASON_EXTENSION = f"{BASE}/StructureDefinition/screening-reason"
LICENCE_NUMBER = f"{BASE}/NamingSystem/licence-number"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"

# Ids of the two resource types that are made from two kinds of row carry the kind.
ALLERGY_PREFIX = "allergy-"
REACTION_PREFIX = "test-reaction-"
EVENT_PREFIX = "event-"
SIDE_EFFECT_PREFIX = "side-effect-"
# A Binary's id names what it holds: a clinical photo's image is `photo-<id>`.
PHOTO_BINARY_PREFIX = "photo-"


def _pruned(value: Any) -> Any:
    """FHIR JSON has no empty elements: no null, no empty string, list or object. A decimal
    is a JSON number."""
    if isinstance(value, dict):
        return {k: v for k, item in value.items() if (v := _pruned(item)) not in _EMPTY}
    if isinstance(value, list):
        return [v for item in value if (v := _pruned(item)) not in _EMPTY]
    if isinstance(value, Decimal):
        return float(value)
    return value


_EMPTY: tuple[Any, ...] = (None, "", [], {})


def resource(resource_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """A resource of `resource_type` from its elements, without the empty ones."""
    out: dict[str, Any] = {"resourceType": resource_type, **_pruned(data)}
    return out


def validate(data: dict[str, Any]) -> Any:
    """The resource read by fhir.resources' R4B model for its type: raises on anything that
    is not valid FHIR R4B."""
    model = get_fhir_model_class(data["resourceType"])
    return model.model_validate({k: v for k, v in data.items() if k != "resourceType"})


def checked(data: dict[str, Any]) -> dict[str, Any]:
    """`data`, validated first when the FHIR_VALIDATE setting is on (it is in the tests)."""
    if getattr(settings, "FHIR_VALIDATE", False):
        validate(data)
    return data


def ref(kind: str, pk: Any, display: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"reference": f"{kind}/{pk}"}
    if display:
        out["display"] = display
    return out


def _concept(system: str, code: str, display: str = "", text: str = "") -> dict[str, Any]:
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    out: dict[str, Any] = {"coding": [coding]}
    if text or display:
        out["text"] = text or display
    return out


def _person(user: Any) -> str:
    return (user.get_full_name() or user.username) if user is not None else ""


def _meta(when: Any) -> dict[str, Any]:
    return {"meta": {"lastUpdated": when.isoformat()}} if when is not None else {}


def patient(p: Patient) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(p.pk),
        "active": p.merged_into_id is None,
        "name": [{"use": "official", "family": p.last_name, "given": [p.first_name]}],
        "gender": p.sex if p.sex else None,
        "birthDate": p.date_of_birth.isoformat() if p.date_of_birth else None,
        "managingOrganization": ref("Organization", p.clinic_id),
    }
    telecom = []
    if p.phone:
        telecom.append({"system": "phone", "value": p.phone_e164 or p.phone})
    if p.email:
        telecom.append({"system": "email", "value": p.email})
    if telecom:
        data["telecom"] = telecom
    if p.address:
        data["address"] = [{"text": p.address}]
    contacts = []
    if p.emergency_name:
        contacts.append(
            {
                "relationship": [{"text": p.emergency_relation or "emergency contact"}],
                "name": {"text": p.emergency_name},
                "telecom": [{"system": "phone", "value": p.emergency_phone}]
                if p.emergency_phone
                else None,
            }
        )
    if p.guardian_name:
        contacts.append(
            {
                "relationship": [{"text": p.guardian_relation or "guardian"}],
                "name": {"text": p.guardian_name},
            }
        )
    if contacts:
        data["contact"] = contacts
    if p.merged_into_id is not None:
        data["link"] = [{"other": ref("Patient", p.merged_into_id), "type": "replaced-by"}]
    return resource("Patient", data)


def organization(clinic: Clinic) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(clinic.pk),
        "active": True,
        "name": clinic.name,
        "type": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                        "code": "prov",
                        "display": "Healthcare Provider",
                    }
                ]
            }
        ],
    }
    if clinic.phone:
        data["telecom"] = [{"system": "phone", "value": clinic.phone}]
    if clinic.address or clinic.city:
        data["address"] = [{"text": clinic.address or None, "city": clinic.city or None}]
    return resource("Organization", data)


def practitioner(member: Membership, licences: list[PractitionerLicence]) -> dict[str, Any]:
    """A staff member of the clinic, with each current licence as a qualification. The id is
    the user's, so that every reference to the person (a session's, a visit's) meets it."""
    user = member.user
    data: dict[str, Any] = {
        "id": str(user.pk),
        "active": member.deactivated_at is None and user.is_active,
        "name": [{"family": user.last_name or None, "given": [user.first_name or user.username]}],
    }
    if user.email:
        data["telecom"] = [{"system": "email", "value": user.email}]
    if licences:
        data["qualification"] = [
            {
                "identifier": [{"system": LICENCE_NUMBER, "value": lic.number}],
                "code": _concept(LICENCE_SYSTEM, lic.kind, str(lic.get_kind_display())),
                "period": {"end": lic.expires_on.isoformat()},
                "issuer": {"display": lic.jurisdiction} if lic.jurisdiction else None,
            }
            for lic in licences
        ]
    return resource("Practitioner", data)


def practitioner_role(member: Membership) -> dict[str, Any]:
    data = {
        "id": str(member.pk),
        "active": member.deactivated_at is None,
        "period": {
            "start": member.created_at.isoformat(),
            "end": member.deactivated_at.isoformat() if member.deactivated_at else None,
        },
        "practitioner": ref("Practitioner", member.user_id, _person(member.user)),
        "organization": ref("Organization", member.clinic_id),
        "code": [_concept(ROLE_SYSTEM, member.role, str(member.get_role_display()))],
    }
    return resource("PractitionerRole", data)


def location(room: Room) -> dict[str, Any]:
    data = {
        "id": str(room.pk),
        "status": "active" if room.active else "inactive",
        "name": room.name,
        "mode": "instance",
        "managingOrganization": ref("Organization", room.clinic_id),
    }
    return resource("Location", data)


def allergy(a: Allergy) -> dict[str, Any]:
    """An allergy the patient reported. One entered in error keeps no clinical status (FHIR's
    rule ait-2)."""
    in_error = a.entered_in_error_at is not None
    name = a.ingredient.name if a.ingredient is not None else ""
    data: dict[str, Any] = {
        "id": f"{ALLERGY_PREFIX}{a.pk}",
        "verificationStatus": _concept(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
            "entered-in-error" if in_error else "unconfirmed",
        ),
        "type": "allergy",
        "category": ["medication"],
        "code": {"text": name or a.substance or "unknown substance"},
        "patient": ref("Patient", a.patient_id),
        "recordedDate": a.recorded_at.isoformat(),
    }
    if not in_error:
        data["clinicalStatus"] = _concept(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active"
        )
    if a.recorded_by_id is not None:
        data["recorder"] = ref("Practitioner", a.recorded_by_id)
    if a.reaction:
        data["reaction"] = [{"manifestation": [{"text": a.reaction}]}]
    if a.noticed:
        data["note"] = [{"text": f"Noticed: {a.noticed}"}]
    return resource("AllergyIntolerance", data)


def test_reaction(reading: AllergyReading) -> dict[str, Any]:
    """A positive reading of an allergy test: a confirmed reaction to the course's products."""
    course = reading.test.course
    products = ", ".join(sorted(p.name for p in course.products.all()))
    data = {
        "id": f"{REACTION_PREFIX}{reading.pk}",
        "clinicalStatus": _concept(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active"
        ),
        "verificationStatus": _concept(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed"
        ),
        "type": "allergy",
        "category": ["medication"],
        "criticality": "high" if reading.result == "systemic" else "low",
        "code": {"text": products or "the course's products"},
        "patient": ref("Patient", course.patient_id),
        "recordedDate": reading.read_at.isoformat(),
        "recorder": ref("Practitioner", reading.read_by_id),
        "reaction": [
            {
                "manifestation": [{"text": str(reading.get_result_display())}],
                "severity": "severe" if reading.result == "systemic" else "mild",
                "onset": reading.test.given_at.isoformat(),
                "exposureRoute": {"text": "intradermal test injection"},
                "note": [{"text": reading.notes}] if reading.notes else None,
            }
        ],
    }
    return resource("AllergyIntolerance", data)


def consent(c: Consent) -> dict[str, Any]:
    """A signed consent, with its text. FHIR's attachment hash is SHA-1; the SHA-256 the
    product keeps (and checks the text against) is an identifier beside it."""
    text = c.text.encode()
    data = {
        "id": str(c.pk),
        "status": "active",
        "scope": _concept(
            "http://terminology.hl7.org/CodeSystem/consentscope", "treatment", "Treatment"
        ),
        "category": [_concept(LOINC, "59284-0", "Consent Document")],
        "patient": ref("Patient", c.patient_id),
        "dateTime": c.signed_at.isoformat(),
        "organization": [ref("Organization", c.patient.clinic_id)],
        "identifier": [{"system": CONSENT_SHA256, "value": c.text_sha256}],
        "sourceAttachment": {
            "contentType": "text/plain; charset=utf-8",
            "data": base64.b64encode(text).decode(),
            "hash": base64.b64encode(hashlib.sha1(text).digest()).decode(),
            "title": f"Consent to {c.indication}" if c.indication else "Consent",
        },
        "policyRule": _concept(
            "http://terminology.hl7.org/CodeSystem/v3-ActCode", "OPTIN", "opt-in"
        ),
        "provision": {"type": "permit"},
        **_meta(c.recorded_at),
    }
    return resource("Consent", data)


_CAREPLAN_STATUS = {
    "planned": "active",
    "active": "active",
    "maintenance": "active",
    "completed": "completed",
    "stopped": "revoked",
}


def care_plan(course: Course) -> dict[str, Any]:
    """A course with its plan: the planned number of sessions at the cadence, from the first
    session's date, and the sessions done so far as the activity's outcome (read from
    `course.sessions`: prefetch it for a list)."""
    session_ids = [s.pk for s in sorted(course.sessions.all(), key=lambda s: s.number)]
    data: dict[str, Any] = {
        "id": str(course.pk),
        "status": _CAREPLAN_STATUS.get(course.status, "unknown"),
        "intent": "plan",
        "title": f"{course.protocol.name}: {course.get_indication_display()}",
        "subject": ref("Patient", course.patient_id),
        "created": course.created_at.isoformat(),
        "period": {"start": course.first_session_on.isoformat()}
        if course.first_session_on
        else None,
        "author": ref("Practitioner", course.created_by_id) if course.created_by_id else None,
        "description": f"Areas: {', '.join(course.areas)}" if course.areas else None,
        "note": [{"text": f"Stopped: {course.stop_reason}"}] if course.stop_reason else None,
        "activity": [
            {
                "outcomeReference": [ref("Procedure", pk) for pk in session_ids] or None,
                "detail": {
                    "kind": "Procedure",
                    "code": _concept(
                        PROCEDURE_SYSTEM, "mesotherapy-session", "Mesotherapy session"
                    ),
                    "status": "completed"
                    if course.status == "completed"
                    else ("stopped" if course.status == "stopped" else "in-progress"),
                    "scheduledTiming": {
                        "repeat": {
                            "count": course.planned_sessions,
                            "frequency": 1,
                            "period": course.cadence_days,
                            "periodUnit": "d",
                        }
                    },
                    "productReference": None,
                    "description": course.protocol.name,
                },
            }
        ],
    }
    return resource("CarePlan", data)


_APPOINTMENT_STATUS = {
    "booked": "booked",
    "confirmed": "booked",
    "arrived": "arrived",
    "done": "fulfilled",
    "no_show": "noshow",
    "cancelled": "cancelled",
}


def appointment(a: Appointment) -> dict[str, Any]:
    participants: list[dict[str, Any]] = [
        {"actor": ref("Patient", a.patient_id), "required": "required", "status": "accepted"},
        {
            "actor": ref("Practitioner", a.practitioner_id),
            "required": "required",
            "status": "accepted",
        },
    ]
    if a.room_id is not None:
        participants.append(
            {"actor": ref("Location", a.room_id), "required": "required", "status": "accepted"}
        )
    data = {
        "id": str(a.pk),
        "status": _APPOINTMENT_STATUS.get(a.status, "booked"),
        "appointmentType": _concept(VISIT_SYSTEM, a.kind, str(a.get_kind_display())),
        "start": a.starts_at.isoformat(),
        "end": a.ends_at.isoformat(),
        "created": a.created_at.isoformat(),
        "comment": a.notes or None,
        "cancelationReason": {"text": a.cancel_reason} if a.cancel_reason else None,
        "basedOn": None,
        "supportingInformation": [ref("CarePlan", a.course_id)] if a.course_id else None,
        "participant": participants,
    }
    return resource("Appointment", data)


def _area(area: str) -> dict[str, Any]:
    from mesoclinic.protocols.vocab import Area

    label = str(Area(area).label) if area in Area.values else area
    return _concept(AREA_SYSTEM, area, label)


def procedure(s: Session, areas: list[str]) -> dict[str, Any]:
    """A session, with one body site per area injected."""
    data: dict[str, Any] = {
        "id": str(s.pk),
        "status": "completed",
        "code": _concept(PROCEDURE_SYSTEM, "mesotherapy-session", "Mesotherapy session"),
        "subject": ref("Patient", s.course.patient_id),
        "basedOn": [ref("CarePlan", s.course_id)],
        "performedDateTime": s.performed_at.isoformat(),
        "performer": [{"actor": ref("Practitioner", s.practitioner_id)}],
        "bodySite": [_area(a) for a in areas] or None,
        "note": [{"text": s.notes}] if s.notes else None,
    }
    if s.kind == Session.Kind.MAINTENANCE:
        data["category"] = {"text": "maintenance"}
    return resource("Procedure", data)


def medication(lot: Lot, contained_id: str = "") -> dict[str, Any]:
    """A lot as a Medication (a dict, to be contained in another resource)."""
    return {
        "resourceType": "Medication",
        "id": contained_id or f"lot-{lot.pk}",
        "code": {"text": lot.product.name},
        "batch": {"lotNumber": lot.lot_number, "expirationDate": lot.expires_on.isoformat()},
    }


def medication_administration(i: SessionInjection) -> dict[str, Any]:
    """One injection of a session: the dose in mL, with the lot as a contained Medication."""
    s = i.session
    data: dict[str, Any] = {
        "id": str(i.pk),
        "contained": [medication(i.lot, "lot")],
        "status": "completed",
        "medicationReference": {"reference": "#lot"},
        "subject": ref("Patient", s.course.patient_id),
        "partOf": [ref("Procedure", s.pk)],
        "effectiveDateTime": s.performed_at.isoformat(),
        "performer": [{"actor": ref("Practitioner", s.practitioner_id)}],
        "dosage": {
            "site": _area(i.area),
            "route": {"text": "intradermal"},
            "method": _concept(TECHNIQUE_SYSTEM, i.technique) if i.technique else None,
            "dose": {"value": i.volume_ml, "unit": "mL", "system": UCUM, "code": "mL"},
        },
    }
    return resource("MedicationAdministration", data)


def observation(m: Measurement) -> dict[str, Any]:
    """A measurement: LOINC where SPEC gives the code, else the local code for its kind."""
    label = str(m.get_kind_display())
    if m.site:
        label = f"{label} ({m.site})"
    if m.loinc:
        code = _concept(LOINC, m.loinc, label)
        code["coding"].append({"system": MEASUREMENT_SYSTEM, "code": m.kind})
    else:
        local = f"{m.kind}:{m.site}" if m.site else m.kind
        code = _concept(MEASUREMENT_SYSTEM, local, label)
    data: dict[str, Any] = {
        "id": str(m.pk),
        "status": "amended"
        if m.charted_value is not None and m.charted_value != m.value
        else "final",
        "code": code,
        "subject": ref("Patient", m.course.patient_id),
        "effectiveDateTime": m.taken_at.isoformat(),
        "issued": m.recorded_at.isoformat(),
        "valueQuantity": {"value": m.value, "unit": m.unit} if m.unit else None,
        "bodySite": _area(m.area) if m.area else None,
        "note": [{"text": m.notes}] if m.notes else None,
        "partOf": [ref("Procedure", m.session_id)] if m.session_id else None,
        "basedOn": [ref("CarePlan", m.course_id)],
    }
    if not m.unit:
        data["valueQuantity"] = {"value": m.value}
    if m.recorded_by_id is not None:
        data["performer"] = [ref("Practitioner", m.recorded_by_id)]
    return resource("Observation", data)


_EVENT_OUTCOME = {
    "ongoing": "ongoing",
    "resolving": "recovering",
    "resolved": "resolved",
    "resolvedWithSequelae": "resolvedWithSequelae",
    "fatal": "fatal",
    "unknown": "unknown",
}
_OUTCOME_SYSTEM = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"
_SERIOUSNESS_SYSTEM = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
_SEVERITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"


def _grade(grade: int | None) -> dict[str, Any]:
    """CTCAE grade 1 to 5 as FHIR's severity and seriousness (grade 3 and above is serious)."""
    if grade is None:
        return {}
    severity = "mild" if grade <= 1 else ("moderate" if grade == 2 else "severe")
    serious = "serious" if grade >= 3 else "non-serious"
    return {
        "severity": _concept(_SEVERITY_SYSTEM, severity, text=f"CTCAE grade {grade}"),
        "seriousness": _concept(_SERIOUSNESS_SYSTEM, serious),
    }


def _suspects(lots: list[Lot]) -> dict[str, Any]:
    if not lots:
        return {}
    return {
        "contained": [medication(lot) for lot in lots],
        "suspectEntity": [{"instance": {"reference": f"#lot-{lot.pk}"}} for lot in lots],
    }


def adverse_event(e: AdverseEvent) -> dict[str, Any]:
    """A reported adverse event, with its suspect lots contained as Medications."""
    event = (
        _concept(SNOMED, e.snomed_code, text=str(e.get_kind_display()))
        if e.snomed_code
        else _concept(EVENT_KIND_SYSTEM, e.kind, str(e.get_kind_display()))
    )
    data: dict[str, Any] = {
        "id": f"{EVENT_PREFIX}{e.pk}",
        "actuality": "actual",
        "event": event,
        "subject": ref("Patient", e.patient_id),
        "date": e.onset_at.isoformat() if e.onset_at else None,
        "recordedDate": e.reported_at.isoformat(),
        "recorder": ref("Practitioner", e.reported_by_id) if e.reported_by_id else None,
        "outcome": _concept(_OUTCOME_SYSTEM, _EVENT_OUTCOME.get(e.outcome, "unknown")),
        "study": None,
        **_grade(e.ctcae_grade),
        **_suspects(list(e.suspected_lots.all())),
        **_meta(e.updated_at),
    }
    if e.session_id is not None:
        data["suspectEntity"] = data.get("suspectEntity", []) + [
            {"instance": ref("Procedure", e.session_id)}
        ]
    if e.description or e.actions_taken:
        text = e.description
        if e.actions_taken:
            text = f"{text}\nActions taken: {e.actions_taken}".strip()
        data["event"]["text"] = f"{data['event'].get('text', '')}: {text}".strip(": ")
    return resource("AdverseEvent", data)


def side_effect(se: SideEffect) -> dict[str, Any]:
    """A side effect after a session, with the session's lots as suspects (read from its
    injections: prefetch `session__injections__lot__product` for a list)."""
    s = se.session
    by_id = {i.lot_id: i.lot for i in s.injections.all()}
    lots = [by_id[k] for k in sorted(by_id)]
    data: dict[str, Any] = {
        "id": f"{SIDE_EFFECT_PREFIX}{se.pk}",
        "actuality": "actual",
        "category": [
            _concept(
                "http://terminology.hl7.org/CodeSystem/adverse-event-category",
                "medication-mishap",
            )
        ],
        "event": _concept(SIDE_EFFECT_SYSTEM, se.kind, text=se.description or se.kind),
        "subject": ref("Patient", s.course.patient_id),
        "date": se.onset_at.isoformat() if se.onset_at else None,
        "recordedDate": se.reported_at.isoformat() if se.reported_at else None,
        "recorder": ref("Practitioner", se.reported_by_id) if se.reported_by_id else None,
        "outcome": _concept(_OUTCOME_SYSTEM, "resolved" if se.resolved_at else "ongoing"),
        **_grade(se.grade),
        **_suspects(lots),
    }
    data["suspectEntity"] = data.get("suspectEntity", []) + [{"instance": ref("Procedure", s.pk)}]
    return resource("AdverseEvent", data)


# Screening: the clinic's questionnaire and a patient's answers.


def questionnaire_url(form: ScreeningForm) -> str:
    """The canonical of the clinic's screening questionnaire, the same for every version."""
    return f"{QUESTIONNAIRE_URL}-{form.clinic_id}"


_ITEM_TYPES = {"boolean", "string", "choice"}


def _question(q: dict[str, Any]) -> dict[str, Any]:
    """A question of the form as a Questionnaire item. The stored questions are answered yes
    or no; a question that names another type (a string, or a choice of `options`) keeps it."""
    kind = q.get("type") if q.get("type") in _ITEM_TYPES else "boolean"
    item: dict[str, Any] = {
        "linkId": str(q["key"]),
        "text": str(q["text"]),
        "type": kind,
        "required": True,
    }
    if kind == "choice":
        item["answerOption"] = [{"valueString": str(o)} for o in q.get("options", [])]
    if q.get("when_yes"):
        item["extension"] = [{"url": WHEN_YES_EXTENSION, "valueCode": str(q["when_yes"])}]
    return item


def questionnaire(form: ScreeningForm, current: bool) -> dict[str, Any]:
    """One version of a clinic's screening form. Only the clinic's latest version is active;
    the earlier ones are retired, kept for the screenings that answered them. The age rule is
    worked out from the date of birth, not asked, so it is no item."""
    document = form.document
    data: dict[str, Any] = {
        "id": str(form.pk),
        "url": questionnaire_url(form),
        "version": str(form.version),
        "name": "ScreeningQuestionnaire",
        "title": document.get("title") or "Screening questionnaire",
        "status": "active" if current else "retired",
        "subjectType": ["Patient"],
        "date": form.created_at.isoformat(),
        "publisher": form.clinic.name,
        "item": [_question(q) for q in form.questions],
    }
    return resource("Questionnaire", data)


def _answer(value: Any) -> dict[str, Any] | None:
    if isinstance(value, bool):
        return {"valueBoolean": value}
    if isinstance(value, int):
        return {"valueInteger": value}
    if isinstance(value, str) and value:
        return {"valueString": value}
    return None


def _reason(reason: dict[str, Any]) -> dict[str, Any]:
    return {
        "url": REASON_EXTENSION,
        "extension": [
            {"url": "question", "valueString": str(reason.get("question", ""))},
            {"url": "outcome", "valueCode": str(reason.get("outcome", ""))},
            {"url": "text", "valueString": str(reason.get("text", ""))},
        ],
    }


def questionnaire_response(s: Screening) -> dict[str, Any]:
    """A patient's screening: each answer under its question, who answered and when, and the
    result with each reason for it (a caution or a hard stop, in the question's words) as
    extensions, since a QuestionnaireResponse has no element for them."""
    answers = s.answers or {}
    items = []
    for q in s.form.questions:
        answer = _answer(answers.get(q["key"]))
        items.append(
            {
                "linkId": str(q["key"]),
                "text": str(q["text"]),
                "answer": [answer] if answer is not None else None,
            }
        )
    patient_ref = ref("Patient", s.patient_id)
    # The patient answers in the portal with their own login; otherwise a member of staff did.
    by_patient = s.screened_by_id is not None and s.screened_by_id == s.patient.user_id
    if by_patient:
        author: dict[str, Any] | None = patient_ref
    elif s.screened_by_id is not None:
        author = ref("Practitioner", s.screened_by_id)
    else:
        author = None
    data: dict[str, Any] = {
        "id": str(s.pk),
        "extension": [
            {
                "url": RESULT_EXTENSION,
                "valueCodeableConcept": _concept(
                    SCREENING_RESULT_SYSTEM, s.result, str(s.get_result_display())
                ),
            },
            *(_reason(r) for r in s.reasons or []),
        ],
        "questionnaire": f"{questionnaire_url(s.form)}|{s.form.version}",
        "status": "completed",
        "subject": patient_ref,
        "authored": s.screened_at.isoformat(),
        "author": author,
        "source": patient_ref,
        "item": items,
    }
    return resource("QuestionnaireResponse", data)


# Clinical photos.


def photo_binary_id(photo: Photo) -> str:
    return f"{PHOTO_BINARY_PREFIX}{photo.pk}"


def _photo_title(photo: Photo) -> str:
    return f"{photo.get_area_display()}, {photo.get_view_display().lower()} view"


def document_reference(photo: Photo, size: int | None) -> dict[str, Any]:
    """A clinical photo, by reference: the image is never inlined, its attachment's `url` is
    the Binary that serves it to the same callers, through the same checks. FHIR's attachment
    hash is SHA-1, which would mean reading every image; the SHA-256 the product keeps of the
    stored image is an identifier instead."""
    patient_id = photo.course.patient_id
    by_patient = photo.uploaded_by_id is not None and (
        photo.uploaded_by_id == photo.course.patient.user_id
    )
    author = (
        ref("Patient", patient_id)
        if by_patient
        else (ref("Practitioner", photo.uploaded_by_id) if photo.uploaded_by_id else None)
    )
    related = [ref("CarePlan", photo.course_id)]
    if photo.session_id is not None:
        related.append(ref("Procedure", photo.session_id))
    if photo.side_effect_id is not None:
        related.append(ref("AdverseEvent", f"{SIDE_EFFECT_PREFIX}{photo.side_effect_id}"))
    taken = photo.clinic.local(photo.taken_at).date().isoformat()
    data: dict[str, Any] = {
        "id": str(photo.pk),
        "identifier": [{"system": PHOTO_SHA256, "value": photo.sha256}],
        "status": "current",
        "type": _concept(PHOTO_SYSTEM, "clinical-photo", "Clinical photo"),
        "subject": ref("Patient", patient_id),
        "date": photo.uploaded_at.isoformat(),
        "author": [author] if author else None,
        "description": _photo_title(photo),
        "content": [
            {
                "attachment": {
                    "contentType": photo.content_type,
                    "url": f"Binary/{photo_binary_id(photo)}",
                    "size": size,
                    "title": f"{_photo_title(photo)}, {taken}",
                    "creation": photo.taken_at.isoformat(),
                }
            }
        ],
        "context": {
            "period": {"start": photo.taken_at.isoformat(), "end": photo.taken_at.isoformat()},
            "related": related,
        },
    }
    return resource("DocumentReference", data)


def stored_size(photo: Photo) -> int | None:
    """The stored image's size in bytes, from the storage (a file's size, an object's
    metadata), without reading it; None when the storage cannot say (a missing file), so that
    one missing image never fails a whole search or export."""
    from mesoclinic.outcomes.models import photo_storage

    try:
        size: int = photo_storage().size(photo.image.name)
    except Exception:  # noqa: BLE001 - a missing or unreachable file leaves the size out
        return None
    return size


def photo_document(photo: Photo) -> dict[str, Any]:
    """The DocumentReference of a photo, with its stored size."""
    return document_reference(photo, stored_size(photo))


def binary(photo: Photo, content: bytes) -> dict[str, Any]:
    """A photo's image as a Binary resource, for a client that asks for FHIR JSON; access to it
    follows its DocumentReference."""
    data = {
        "id": photo_binary_id(photo),
        "contentType": photo.content_type,
        "securityContext": ref("DocumentReference", photo.pk),
        "data": base64.b64encode(content).decode(),
    }
    return resource("Binary", data)
