"""One function per FHIR R4B resource, from the models that hold it.

Each function takes one row (already fetched through the access layer) and returns the
resource as a fhir.resources R4B model, so that every resource served has been validated by
the library. The codes: LOINC only where SPEC gives one (a measurement's stored `loinc`),
SNOMED CT where a clinician entered a concept id, and otherwise the local code systems under
`BASE` below, one per kind of thing, named in docs/fhir.md.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from fhir.resources.R4B.adverseevent import AdverseEvent as FhirAdverseEvent
from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.appointment import Appointment as FhirAppointment
from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.consent import Consent as FhirConsent
from fhir.resources.R4B.location import Location
from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.practitionerrole import PractitionerRole
from fhir.resources.R4B.procedure import Procedure
from fhir.resources.R4B.resource import Resource

from mesoclinic.accounts.models import Clinic, Membership, PractitionerLicence
from mesoclinic.courses.models import AllergyReading, Course, Session, SessionInjection, SideEffect
from mesoclinic.formulary.models import Lot
from mesoclinic.outcomes.models import Measurement
from mesoclinic.patients.models import Allergy, Consent, Patient
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
CONSENT_SHA256 = f"{BASE}/NamingSystem/consent-text-sha256"
LICENCE_NUMBER = f"{BASE}/NamingSystem/licence-number"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"

# Ids of the two resource types that are made from two kinds of row carry the kind.
ALLERGY_PREFIX = "allergy-"
REACTION_PREFIX = "test-reaction-"
EVENT_PREFIX = "event-"
SIDE_EFFECT_PREFIX = "side-effect-"


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


def patient(p: Patient) -> FhirPatient:
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
    return FhirPatient.model_validate(data)


def organization(clinic: Clinic) -> Organization:
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
    return Organization.model_validate(data)


def practitioner(member: Membership, licences: list[PractitionerLicence]) -> Practitioner:
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
    return Practitioner.model_validate(data)


def practitioner_role(member: Membership) -> PractitionerRole:
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
    return PractitionerRole.model_validate(data)


def location(room: Room) -> Location:
    data = {
        "id": str(room.pk),
        "status": "active" if room.active else "inactive",
        "name": room.name,
        "mode": "instance",
        "managingOrganization": ref("Organization", room.clinic_id),
    }
    return Location.model_validate(data)


def allergy(a: Allergy) -> AllergyIntolerance:
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
    return AllergyIntolerance.model_validate(data)


def test_reaction(reading: AllergyReading) -> AllergyIntolerance:
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
    return AllergyIntolerance.model_validate(data)


def consent(c: Consent) -> FhirConsent:
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
    return FhirConsent.model_validate(data)


_CAREPLAN_STATUS = {
    "planned": "active",
    "active": "active",
    "maintenance": "active",
    "completed": "completed",
    "stopped": "revoked",
}


def care_plan(course: Course, session_ids: list[int]) -> CarePlan:
    """A course with its plan: the planned number of sessions at the cadence, from the first
    session's date, and the sessions done so far as the activity's outcome."""
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
    return CarePlan.model_validate(data)


_APPOINTMENT_STATUS = {
    "booked": "booked",
    "confirmed": "booked",
    "arrived": "arrived",
    "done": "fulfilled",
    "no_show": "noshow",
    "cancelled": "cancelled",
}


def appointment(a: Appointment) -> FhirAppointment:
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
    return FhirAppointment.model_validate(data)


def _area(area: str) -> dict[str, Any]:
    from mesoclinic.protocols.vocab import Area

    label = str(Area(area).label) if area in Area.values else area
    return _concept(AREA_SYSTEM, area, label)


def procedure(s: Session, areas: list[str]) -> Procedure:
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
    return Procedure.model_validate(data)


def medication(lot: Lot, contained_id: str = "") -> dict[str, Any]:
    """A lot as a Medication (a dict, to be contained in another resource)."""
    return {
        "resourceType": "Medication",
        "id": contained_id or f"lot-{lot.pk}",
        "code": {"text": lot.product.name},
        "batch": {"lotNumber": lot.lot_number, "expirationDate": lot.expires_on.isoformat()},
    }


def medication_administration(i: SessionInjection) -> MedicationAdministration:
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
    return MedicationAdministration.model_validate(data)


def observation(m: Measurement) -> Observation:
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
    return Observation.model_validate(data)


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


def adverse_event(e: AdverseEvent) -> FhirAdverseEvent:
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
    return FhirAdverseEvent.model_validate(data)


def side_effect(se: SideEffect, lots: list[Lot]) -> FhirAdverseEvent:
    """A side effect after a session, with the session's lots as suspects."""
    s = se.session
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
    return FhirAdverseEvent.model_validate(data)


def as_json(resource: Resource) -> dict[str, Any]:
    """The resource as FHIR JSON (no empty elements)."""
    out: dict[str, Any] = resource.model_dump(mode="json", exclude_none=True)
    return out
