"""The FHIR R4B REST API: `metadata`, `read` and `search-type`, through the access layer.

A caller is an API bearer token (`Authorization: Bearer …`, the same tokens as `/api/v1/`) or
a signed-in browser. Every resource type is served from rows fetched with the access layer's
`*_for` querysets at the level the JSON API uses for the same data, plus the patient's own
login for the types that belong to a patient; reads and searches are audited as the API's are.
Errors are OperationOutcome resources (docs/fhir.md).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt

from mesoclinic import access
from mesoclinic.access import CLINICAL, MANAGE, PATIENT, READ, Caller, caller_from_request
from mesoclinic.accounts.models import AuditEvent, Clinic
from mesoclinic.api.auth import BearerAuth
from mesoclinic.courses.models import AllergyReading, SessionInjection
from mesoclinic.fhir import bulk, mapping, smart
from mesoclinic.fhir.models import ExportJob
from mesoclinic.outcomes import photo_actions

FHIR_JSON = "application/fhir+json; charset=utf-8"
DEFAULT_COUNT = 50
MAX_COUNT = 200
# A clinic's staff at the API's level for the same data, and the patient for their own.
OWN_READ = READ | {PATIENT}
OWN_CLINICAL = CLINICAL | {PATIENT}


class BadRequest(Exception):
    """A search parameter the server does not support or cannot read; the message names it."""


@dataclass(frozen=True)
class Source:
    """One kind of row a resource type is made from."""

    rows: Callable[[Caller, frozenset[str]], QuerySet[Any]]
    build: Callable[[Any], dict[str, Any]]
    prefix: str = ""  # the id's prefix when a type is made from two kinds of row
    id_field: str = "pk"
    patient: str | None = None  # the lookup to the patient's id
    date: str | None = None  # the field the `date` parameter searches
    updated: str | None = None  # the field `_lastUpdated` searches (a real last-change time)


@dataclass(frozen=True)
class Kind:
    need: frozenset[str]
    sources: tuple[Source, ...]
    includes: tuple[str, ...] = field(default=())

    @property
    def patient(self) -> bool:
        return all(s.patient for s in self.sources)

    @property
    def date(self) -> bool:
        return all(s.date for s in self.sources)

    @property
    def updated(self) -> bool:
        return all(s.updated for s in self.sources)


def patient_id_of(obj: Any, lookup: str | None) -> int | None:
    if lookup is None:
        return None
    target = obj
    for part in lookup.split("__"):
        target = getattr(target, part)
    return int(target) if target is not None else None


# The rows of each kind, fetched through the access layer.


def _clinics(caller: Caller, need: frozenset[str]) -> QuerySet[Clinic]:
    """The caller's own clinic: a clinic is the Organization of its staff and its patients."""
    if not caller.may(need):
        caller.require(need)  # Raises the 403 (or the sign-in refusal) that fits the caller.
    return Clinic.objects.filter(pk=caller.clinic_id or 0)


def _members(caller: Caller, need: frozenset[str]) -> QuerySet[Any]:
    return access.members_for(caller, need).select_related("user")


def _sessions(caller: Caller, need: frozenset[str]) -> QuerySet[Any]:
    return access.sessions_for(caller, need).select_related("course").prefetch_related("injections")


def _injections(caller: Caller, need: frozenset[str]) -> QuerySet[Any]:
    return SessionInjection.objects.filter(
        session__in=access.sessions_for(caller, need)
    ).select_related("session__course", "lot__product")


def _readings(caller: Caller, need: frozenset[str]) -> QuerySet[Any]:
    tests = access.allergy_tests_for(caller, need)
    return (
        AllergyReading.objects.filter(test__in=tests)
        .exclude(result=AllergyReading.Result.NONE)
        .select_related("test__course")
        .prefetch_related("test__course__products")
    )


def _allergies(caller: Caller, need: frozenset[str]) -> QuerySet[Any]:
    from mesoclinic.patients.models import Allergy

    # The access layer scopes allergies per object (access_allergy); the list is the
    # allergies of the patients the caller may see.
    return Allergy.objects.filter(patient__in=access.patients_for(caller, need)).select_related(
        "ingredient"
    )


def _practitioner(member: Any) -> dict[str, Any]:
    from mesoclinic.accounts.models import PractitionerLicence

    # The member's current licences in this clinic (a renewed one is superseded).
    licences = list(
        PractitionerLicence.objects.filter(
            user_id=member.user_id, clinic_id=member.clinic_id, superseded_by__isnull=True
        ).order_by("expires_on")
    )
    return mapping.practitioner(member, licences)


def _procedure(s: Any) -> dict[str, Any]:
    areas = sorted({i.area for i in s.injections.all()})
    return mapping.procedure(s, areas)


def _screening_forms(caller: Caller, need: frozenset[str]) -> QuerySet[Any]:
    from mesoclinic.patients.models import ScreeningForm

    # A version is current until the clinic saves a later one.
    later = ScreeningForm.objects.filter(clinic=OuterRef("clinic"), version__gt=OuterRef("version"))
    return (
        access.screening_forms_for(caller, need)
        .select_related("clinic")
        .annotate(superseded=Exists(later))
    )


def _questionnaire(form: Any) -> dict[str, Any]:
    return mapping.questionnaire(form, current=not form.superseded)


def _photos(caller: Caller, need: frozenset[str]) -> QuerySet[Any]:
    # Only the photos the patient's clinical photo consent covers leave the chart.
    return access.consented_photos_for(caller, need).select_related("clinic", "course__patient")


KINDS: dict[str, Kind] = {
    "Patient": Kind(OWN_READ, (Source(access.patients_for, mapping.patient, patient="pk"),)),
    "Organization": Kind(OWN_READ, (Source(_clinics, mapping.organization),)),
    "Practitioner": Kind(READ, (Source(_members, _practitioner, id_field="user_id"),)),
    "PractitionerRole": Kind(READ, (Source(_members, mapping.practitioner_role),)),
    "Location": Kind(READ, (Source(access.rooms_for, mapping.location),)),
    "Procedure": Kind(
        OWN_READ,
        (Source(_sessions, _procedure, patient="course__patient_id", date="performed_at"),),
        includes=("Procedure:patient",),
    ),
    "MedicationAdministration": Kind(
        OWN_READ,
        (
            Source(
                _injections,
                mapping.medication_administration,
                patient="session__course__patient_id",
            ),
        ),
    ),
    "Observation": Kind(
        OWN_READ,
        (
            Source(
                lambda c, n: access.measurements_for(c, n).select_related("course"),
                mapping.observation,
                patient="course__patient_id",
                date="taken_at",
            ),
        ),
    ),
    "AllergyIntolerance": Kind(
        OWN_CLINICAL,
        (
            Source(
                _allergies,
                mapping.allergy,
                prefix=mapping.ALLERGY_PREFIX,
                patient="patient_id",
                date="recorded_at",
            ),
            Source(
                _readings,
                mapping.test_reaction,
                prefix=mapping.REACTION_PREFIX,
                patient="test__course__patient_id",
                date="read_at",
            ),
        ),
    ),
    "Consent": Kind(
        OWN_READ,
        (
            Source(
                lambda c, n: access.consents_for(c, n).select_related("patient"),
                mapping.consent,
                patient="patient_id",
                date="signed_at",
                updated="recorded_at",
            ),
        ),
    ),
    "CarePlan": Kind(
        OWN_READ,
        (
            Source(
                lambda c, n: (
                    access.courses_for(c, n).select_related("protocol").prefetch_related("sessions")
                ),
                mapping.care_plan,
                patient="patient_id",
            ),
        ),
    ),
    "Appointment": Kind(
        OWN_READ,
        (
            Source(
                access.appointments_for, mapping.appointment, patient="patient_id", date="starts_at"
            ),
        ),
    ),
    "AdverseEvent": Kind(
        OWN_CLINICAL,
        (
            Source(
                lambda c, n: access.events_for(c, n).prefetch_related("suspected_lots__product"),
                mapping.adverse_event,
                prefix=mapping.EVENT_PREFIX,
                patient="patient_id",
                date="onset_at",
            ),
            Source(
                lambda c, n: (
                    access.side_effects_for(c, n)
                    .select_related("session__course")
                    .prefetch_related("session__injections__lot__product")
                ),
                mapping.side_effect,
                prefix=mapping.SIDE_EFFECT_PREFIX,
                patient="session__course__patient_id",
                date="onset_at",
            ),
        ),
    ),
    "Questionnaire": Kind(READ, (Source(_screening_forms, _questionnaire),)),
    "QuestionnaireResponse": Kind(
        OWN_READ,
        (
            Source(
                lambda c, n: access.screenings_for(c, n).select_related("form", "patient"),
                mapping.questionnaire_response,
                patient="patient_id",
                date="screened_at",
            ),
        ),
    ),
    "DocumentReference": Kind(
        OWN_CLINICAL,
        (
            Source(
                _photos,
                mapping.photo_document,
                patient="course__patient_id",
                date="uploaded_at",
            ),
        ),
    ),
}


# Answers.


def _answer(data: dict[str, Any], status: int = 200) -> HttpResponse:
    return HttpResponse(json.dumps(mapping.checked(data)), status=status, content_type=FHIR_JSON)


_ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
}


def outcome(status: int, message: str) -> HttpResponse:
    issue = {"severity": "error", "code": _ISSUE_CODES.get(status, "exception")}
    resource = mapping.resource("OperationOutcome", {"issue": [{**issue, "diagnostics": message}]})
    response = _answer(resource, status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="mesoclinic"'
    return response


def _caller(request: HttpRequest) -> Caller | None:
    """The bearer token's caller, else the browser session's; None for a token that is wrong,
    expired or revoked (a wrong token is never taken for the browser's session)."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        found = BearerAuth().authenticate(request, token.strip())
        if found is None:
            # Else an app's SMART token: its scopes limit what it reads (_scope_refusal).
            smart_found = smart.caller_from_access_token(request)
            if smart_found is not None:
                found, request.smart_scopes, request.smart_app = smart_found  # type: ignore[attr-defined]
        return found
    return caller_from_request(request)


def _via_app(request: HttpRequest) -> dict[str, str]:
    """The app a read came through, for its audit row."""
    name = getattr(request, "smart_app", None)
    return {"app": name} if name else {}


def _scope_refusal(request: HttpRequest, caller: Caller, kwargs: dict[str, Any]) -> str:
    """Why an app's SMART token may not make this request; empty when it may (and for every
    other caller, whose reach is the access layer's alone)."""
    scopes: frozenset[str] | None = getattr(request, "smart_scopes", None)
    if scopes is None:
        return ""
    if "resource_type" in kwargs:
        wanted = [kwargs["resource_type"]]
        if "Procedure:patient" in request.GET.getlist("_include"):
            wanted.append("Patient")
    elif "binary_id" in kwargs:
        wanted = ["DocumentReference"]  # a Binary is a clinical photo's image
    else:
        wanted = list(KINDS)  # a bulk export reads every type
    for kind in wanted:
        if kind in KINDS and not smart.allows(scopes, caller, kind):
            return smart.refusal(scopes, caller, kind if len(wanted) < len(KINDS) else None)
    return ""


def _guarded(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """GET only, a caller, and every refusal as an OperationOutcome."""
    return guarded_for(("GET", "HEAD"))(view)


def guarded_for(
    methods: tuple[str, ...],
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """`_guarded` for a view that answers `methods` (the bulk export's status answers DELETE)."""
    return lambda view: _guard(view, methods)


def _guard(
    view: Callable[..., HttpResponse], methods: tuple[str, ...]
) -> Callable[..., HttpResponse]:
    @csrf_exempt
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method not in methods:
            why = "here" if "DELETE" in methods else "this server is read-only"
            response = outcome(405, f"{request.method} is not supported: {why}.")
            response["Allow"] = ", ".join(m for m in methods if m != "HEAD")
            return response
        caller = _caller(request)
        if caller is None or caller.is_anonymous or not caller.is_active:
            return outcome(401, "Authentication required: send a bearer token or sign in.")
        refused = _scope_refusal(request, caller, kwargs)
        if refused:
            return outcome(403, refused)
        try:
            return view(request, caller, *args, **kwargs)
        except BadRequest as e:
            return outcome(400, str(e))
        except PermissionDenied as e:
            return outcome(403, str(e) or "Forbidden.")
        except Http404 as e:
            return outcome(404, str(e) or "Not found.")

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


def _kind(resource_type: str) -> Kind:
    if resource_type == "Binary":
        raise BadRequest("A Binary is only read by its id, the url of a DocumentReference's image.")
    found = KINDS.get(resource_type)
    if found is None:
        raise Http404(f"Unknown resource type: {resource_type}.")
    return found


def _source_for(kind: Kind, resource_id: str) -> tuple[Source, int] | None:
    """Which source an id belongs to, and its key there; None for an id no row can have."""
    for source in kind.sources:
        if source.prefix and not resource_id.startswith(source.prefix):
            continue
        digits = resource_id[len(source.prefix) :]
        if digits.isdigit() and len(digits) < 19:
            return source, int(digits)
    return None


# Read.


@_guarded
def read(
    request: HttpRequest, caller: Caller, resource_type: str, resource_id: str
) -> HttpResponse:
    kind = _kind(resource_type)
    found = _source_for(kind, resource_id)
    # The level is checked before the id is looked at, so a role below it is a 403 whatever
    # the id; an id outside the caller's clinic or records is a 404 like one that never was.
    rows = [s.rows(caller, kind.need) for s in kind.sources]
    if found is None:
        raise Http404(f"No {resource_type} with id {resource_id}.")
    source, key = found
    obj = rows[kind.sources.index(source)].filter(**{source.id_field: key}).first()
    if obj is None:
        raise Http404(f"No {resource_type} with id {resource_id}.")
    resource = source.build(obj)
    access.audit_view(
        caller,
        obj,
        patient_id=patient_id_of(obj, source.patient),
        fhir=f"{resource_type}/{resource_id}",
        **_via_app(request),
    )
    return _answer(resource)


# Binary: a clinical photo's image, the url of its DocumentReference's attachment.


def _wants_resource(request: HttpRequest) -> bool:
    """Whether the client asked for the Binary resource (FHIR JSON) rather than the image
    itself, which is what a client that follows the attachment's url gets."""
    accept = request.headers.get("Accept", "")
    wanted = request.GET.get("_format", "")
    return "application/fhir+json" in accept or wanted in ("json", "application/fhir+json")


@_guarded
def binary(request: HttpRequest, caller: Caller, binary_id: str) -> HttpResponse:
    """The image of a DocumentReference, for the callers who may read the DocumentReference
    and only while it is served (the patient's clinical photo consent covers it), streamed
    from the photo storage; as a Binary resource to `Accept: application/fhir+json`. Every
    read writes a VIEW audit row naming the patient."""
    kind = KINDS["DocumentReference"]
    # The level first, so a role below it is a 403 whatever the id.
    rows = kind.sources[0].rows(caller, kind.need)
    digits = binary_id.removeprefix(mapping.PHOTO_BINARY_PREFIX)
    if binary_id == digits or not digits.isdigit() or len(digits) > 18:
        raise Http404(f"No Binary with id {binary_id}.")
    photo = rows.filter(pk=int(digits)).first()
    if photo is None:
        raise Http404(f"No Binary with id {binary_id}.")
    try:
        opened = photo_actions.open_image(photo)
    except FileNotFoundError:
        raise Http404(f"Binary {binary_id}: the image file is missing from storage.") from None
    access.audit_view(
        caller,
        photo,
        patient_id=photo.course.patient_id,
        fhir=f"Binary/{binary_id}",
        **_via_app(request),
    )
    if _wants_resource(request):
        with opened:
            return _answer(mapping.binary(photo, opened.read()))
    # Streamed a block at a time, never cached (FileResponse); typed as the other answers are.
    streamed: Any = photo_actions.image_response(photo, opened)
    return streamed


# Search.

_COMMON = {"_count", "_offset", "_format", "_include"}
_PREFIXES = ("eq", "lt", "le", "gt", "ge")


def _clinic_tz(caller: Caller) -> Any:
    if caller.membership is not None:
        return caller.membership.clinic.tz
    if caller.patient is not None:
        return caller.patient.clinic.tz
    return timezone.get_current_timezone()


def _interval(name: str, value: str, tz: Any) -> tuple[str, dt.datetime, dt.datetime]:
    """A date parameter as (prefix, start, end): the instant range its precision covers. A
    date without a time is a day (or month, or year) of the clinic's calendar."""
    prefix = value[:2] if value[:2] in _PREFIXES else "eq"
    text = value[2:] if value[:2] in _PREFIXES else value
    if value[:2].isalpha() and value[:2] not in _PREFIXES:
        raise BadRequest(f"Parameter {name}: the prefix {value[:2]} is not supported.")
    m = re.fullmatch(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?", text)
    try:
        if m:
            year, month, day = int(m[1]), int(m[2] or 1), int(m[3] or 1)
            start = dt.date(year, month, day)
            if m[3]:
                end = start + dt.timedelta(days=1)
            elif m[2]:
                end = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
            else:
                end = start.replace(year=year + 1)
            lo = dt.datetime.combine(start, dt.time(), tzinfo=tz)
            hi = dt.datetime.combine(end, dt.time(), tzinfo=tz)
            return prefix, lo, hi
        moment = parse_datetime(text)
    except (ValueError, OverflowError):
        moment = None
    if moment is None or timezone.is_naive(moment):
        raise BadRequest(
            f"Parameter {name}: {value!r} is not a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD, or a "
            "dateTime with a time zone)."
        )
    return prefix, moment, moment + dt.timedelta(seconds=1)


def _date_filter(lookup: str, prefix: str, lo: dt.datetime, hi: dt.datetime) -> Q:
    if prefix == "lt":
        return Q(**{f"{lookup}__lt": lo})
    if prefix == "le":
        return Q(**{f"{lookup}__lt": hi})
    if prefix == "gt":
        return Q(**{f"{lookup}__gte": hi})
    if prefix == "ge":
        return Q(**{f"{lookup}__gte": lo})
    return Q(**{f"{lookup}__gte": lo, f"{lookup}__lt": hi})


def _number(request: HttpRequest, name: str, default: int, low: int, high: int) -> int:
    raw = request.GET.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(f"Parameter {name}: must be a whole number from {low} to {high}.")
    return int(raw)


def _filters(
    request: HttpRequest, caller: Caller, resource_type: str, kind: Kind
) -> list[Q | None]:
    """One Q per source (None when a source can hold no match), from the search parameters."""
    allowed = _COMMON | {"_id"}
    if kind.patient:
        allowed.add("patient")
    if kind.date:
        allowed.add("date")
    if kind.updated:
        allowed.add("_lastUpdated")
    for name in request.GET:
        if name not in allowed:
            raise BadRequest(
                f"Parameter {name} is not supported for {resource_type}; supported: "
                f"{', '.join(sorted(allowed))}."
            )
    includes = request.GET.getlist("_include")
    for inc in includes:
        if inc not in kind.includes:
            raise BadRequest(f"Parameter _include: {inc} is not supported for {resource_type}.")
    tz = _clinic_tz(caller)
    out: list[Q | None] = []
    for source in kind.sources:
        q: Q | None = Q()
        for value in request.GET.getlist("_id"):
            keys = [
                key
                for part in value.split(",")
                if (hit := _source_for(kind, part.strip())) is not None
                for src, key in [hit]
                if src is source
            ]
            q = q & Q(**{f"{source.id_field}__in": keys}) if q is not None else None
        for value in request.GET.getlist("patient"):
            ids = []
            for part in value.split(","):
                part = part.strip().removeprefix("Patient/")
                if not part.isdigit() or len(part) > 18:
                    raise BadRequest(f"Parameter patient: {value!r} is not a Patient id.")
                ids.append(int(part))
            q = q & Q(**{f"{source.patient}__in": ids}) if q is not None else None
        for name, lookup in (("date", source.date), ("_lastUpdated", source.updated)):
            for value in request.GET.getlist(name):
                prefix, lo, hi = _interval(name, value, tz)
                q = q & _date_filter(str(lookup), prefix, lo, hi) if q is not None else None
        out.append(q)
    if "_format" in request.GET and request.GET["_format"] not in (
        "json",
        "application/json",
        "application/fhir+json",
    ):
        raise BadRequest("Parameter _format: only json is supported.")
    return out


def _link(request: HttpRequest, relation: str, offset: int, count: int) -> dict[str, str]:
    params = [(k, v) for k, vs in request.GET.lists() for v in vs if k not in ("_offset", "_count")]
    params += [("_count", str(count)), ("_offset", str(offset))]
    url = request.build_absolute_uri(request.path) + "?" + urlencode(params)
    return {"relation": relation, "url": url}


@_guarded
def search(request: HttpRequest, caller: Caller, resource_type: str) -> HttpResponse:
    """search-type: the matching resources a page at a time (`_count`, `_offset`), newest
    sources' rows in id order, with self, next and previous links."""
    kind = _kind(resource_type)
    querysets = [s.rows(caller, kind.need) for s in kind.sources]
    filters = _filters(request, caller, resource_type, kind)
    count = _number(request, "_count", DEFAULT_COUNT, 0, MAX_COUNT)
    offset = _number(request, "_offset", 0, 0, 10**9)
    matched: list[QuerySet[Any]] = []
    for source, qs, q in zip(kind.sources, querysets, filters, strict=True):
        matched.append(qs.filter(q).order_by(source.id_field) if q is not None else qs.none())
    totals = [qs.count() for qs in matched]
    total = sum(totals)
    # The page: skip `offset` rows across the sources in turn, then take `count`.
    page: list[tuple[Source, Any]] = []
    skip, want = offset, count
    for source, qs, n in zip(kind.sources, matched, totals, strict=True):
        if skip >= n:
            skip -= n
            continue
        rows = list(qs[skip : skip + want]) if want else []
        page += [(source, row) for row in rows]
        want -= len(rows)
        skip = 0
    entries = []
    base = request.build_absolute_uri("/fhir/R4B/")
    shown: list[int | None] = []
    for source, row in page:
        resource = source.build(row)
        entries.append(
            {
                "fullUrl": f"{base}{resource_type}/{resource['id']}",
                "resource": resource,
                "search": {"mode": "match"},
            }
        )
        shown.append(patient_id_of(row, source.patient))
    if "Procedure:patient" in request.GET.getlist("_include"):
        wanted = sorted({pid for pid in shown if pid is not None})
        for p in access.patients_for(caller, OWN_READ).filter(pk__in=wanted).order_by("pk"):
            resource = mapping.patient(p)
            entries.append(
                {
                    "fullUrl": f"{base}Patient/{p.pk}",
                    "resource": resource,
                    "search": {"mode": "include"},
                }
            )
    links = [_link(request, "self", offset, count)]
    if count and offset + count < total:
        links.append(_link(request, "next", offset + count, count))
    if offset > 0 and count:
        links.append(_link(request, "previous", max(0, offset - count), count))
    bundle = mapping.resource(
        "Bundle",
        {
            "type": "searchset",
            "timestamp": timezone.now().isoformat(),
            "total": total,
            "link": links,
            "entry": entries,
        },
    )
    access.audit_list(
        caller,
        f"fhir {resource_type} search",
        shown,
        query=request.GET.urlencode(),
        **_via_app(request),
    )
    return _answer(bundle)


# The CapabilityStatement.


def capability_statement(base: str) -> dict[str, Any]:
    origin = base.split("/fhir/")[0]
    resources = []
    for name, kind in KINDS.items():
        params = [
            {
                "name": "_id",
                "type": "token",
                "documentation": "One id or several, separated by commas.",
            }
        ]
        if kind.updated:
            params.append(
                {
                    "name": "_lastUpdated",
                    "type": "date",
                    "documentation": "Prefixes eq, lt, le, gt, ge.",
                }
            )
        if kind.patient:
            params.append(
                {
                    "name": "patient",
                    "type": "reference",
                    "documentation": "Patient/id or id; several separated by commas.",
                }
            )
        if kind.date:
            params.append(
                {
                    "name": "date",
                    "type": "date",
                    "documentation": "Prefixes eq, lt, le, gt, ge; a date without a time is "
                    "the clinic's calendar day.",
                }
            )
        params.append({"name": "_count", "type": "number", "documentation": f"1 to {MAX_COUNT}."})
        entry: dict[str, Any] = {
            "type": name,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "versioning": "no-version",
            "readHistory": False,
            "updateCreate": False,
            "searchParam": params,
        }
        if kind.includes:
            entry["searchInclude"] = list(kind.includes)
        if name == "Patient":
            entry["operation"] = [
                {"name": "export", "definition": f"{BULK_DATA}/OperationDefinition/patient-export"}
            ]
        resources.append(entry)
    # A Binary is a DocumentReference's image: read only, by the attachment's url.
    resources.append(
        {
            "type": "Binary",
            "documentation": "Binary/photo-<photo id>: the image of a DocumentReference (a "
            "clinical photo), for whoever may read the DocumentReference. The image itself, or "
            "a Binary resource to Accept: application/fhir+json.",
            "interaction": [{"code": "read"}],
        }
    )
    # A Group is `lot-<id>`, the patients exposed to a lot: only its `$export` is served.
    resources.append(
        {
            "type": "Group",
            "documentation": "Group/lot-<lot id>: the patients given the lot. Only $export.",
            "operation": [
                {"name": "export", "definition": f"{BULK_DATA}/OperationDefinition/group-export"}
            ],
        }
    )
    return mapping.resource(
        "CapabilityStatement",
        {
            "status": "active",
            "date": "2025-01-01",
            "publisher": "mesoclinic",
            "kind": "instance",
            "software": {"name": "mesoclinic"},
            "implementation": {"description": "mesoclinic FHIR R4B API (read-only)", "url": base},
            "instantiates": [f"{BULK_DATA}/CapabilityStatement/bulk-data"],
            "fhirVersion": "4.3.0",
            "format": ["json"],
            "rest": [
                {
                    "mode": "server",
                    "documentation": "Read-only, with Bulk Data $export. Authenticate with a "
                    "bearer token from POST /api/v1/auth/token, or a signed-in browser session.",
                    "security": {
                        "cors": False,
                        "extension": [
                            {
                                "url": "http://fhir-registry.smarthealthit.org/"
                                "StructureDefinition/oauth-uris",
                                "extension": [
                                    {"url": "authorize", "valueUri": f"{origin}/oauth/authorize/"},
                                    {"url": "token", "valueUri": f"{origin}/oauth/token/"},
                                    {"url": "revoke", "valueUri": f"{origin}/oauth/revoke/"},
                                ],
                            }
                        ],
                        "service": [
                            {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/"
                                        "restful-security-service",
                                        "code": "SMART-on-FHIR",
                                    }
                                ],
                                "text": "SMART App Launch (OAuth2, for apps the clinic "
                                "registered), or a bearer token (Authorization: Bearer <token>)",
                            }
                        ],
                    },
                    "resource": resources,
                    "operation": [
                        {
                            "name": "export",
                            "definition": f"{BULK_DATA}/OperationDefinition/export",
                            "documentation": "Bulk Data $export for a clinic's managers: "
                            "Prefer: respond-async, _type, _since (docs/fhir.md).",
                        }
                    ],
                }
            ],
        },
    )


@csrf_exempt
def metadata(request: HttpRequest) -> HttpResponse:
    """The CapabilityStatement: open to anyone, as FHIR clients read it before signing in."""
    if request.method not in ("GET", "HEAD"):
        response = outcome(405, f"{request.method} is not supported: this server is read-only.")
        response["Allow"] = "GET"
        return response
    return _answer(capability_statement(request.build_absolute_uri("/fhir/R4B/")))


# Bulk Data `$export` (FHIR Bulk Data Access IG STU 2); the jobs themselves are bulk.py's.

NDJSON = "application/fhir+ndjson"
BULK_DATA = "http://hl7.org/fhir/uv/bulkdata"
_EXPORT_PARAMS = ("_type", "_since", "_outputFormat")
_OUTPUT_FORMATS = ("application/fhir+ndjson", "application/ndjson", "ndjson")


def _information(status: int, message: str) -> HttpResponse:
    issue = {"severity": "information", "code": "informational", "diagnostics": message}
    return _answer(mapping.resource("OperationOutcome", {"issue": [issue]}), status)


def _kick_off(
    request: HttpRequest, caller: Caller, level: str, lot: Any | None = None
) -> HttpResponse:
    """Check the request as the IG has it, record the job and answer where to poll."""
    if "respond-async" not in request.headers.get("Prefer", ""):
        raise BadRequest("$export runs in the background: send the header Prefer: respond-async.")
    accept = request.headers.get("Accept", "")
    if accept and not any(t in accept for t in ("application/fhir+json", "json", "*/*")):
        raise BadRequest(f"Accept: {accept} is not supported; send application/fhir+json.")
    for name in request.GET:
        if name not in _EXPORT_PARAMS:
            raise BadRequest(
                f"Parameter {name} is not supported by $export; supported: "
                f"{', '.join(_EXPORT_PARAMS)}."
            )
    output_format = request.GET.get("_outputFormat")
    if output_format is not None and output_format not in _OUTPUT_FORMATS:
        raise BadRequest(f"Parameter _outputFormat: only {NDJSON} is supported.")
    allowed = bulk.types_for(level)
    types = [t.strip() for v in request.GET.getlist("_type") for t in v.split(",") if t.strip()]
    wrong = [t for t in types if t not in allowed]
    if wrong:
        raise BadRequest(
            f"Parameter _type: {', '.join(wrong)} cannot be exported here; these can: "
            f"{', '.join(allowed)}."
        )
    since = None
    if "_since" in request.GET:
        raw = request.GET["_since"]
        try:
            since = parse_datetime(raw)
        except ValueError:
            since = None
        if since is None or timezone.is_naive(since):
            raise BadRequest(f"Parameter _since: {raw!r} is not a FHIR instant with a time zone.")
    job = bulk.do_request_export(
        caller,
        level,
        lot=lot,
        types=list(dict.fromkeys(types)),
        since=since,
        request_url=request.build_absolute_uri(),
    )
    response = _information(202, "The export has started; poll the Content-Location.")
    response["Content-Location"] = request.build_absolute_uri(
        reverse("fhir_export_status", args=[job.pk])
    )
    return response


@_guarded
def export_system(request: HttpRequest, caller: Caller) -> HttpResponse:
    """System-level `$export`: everything the clinic holds, for its managers."""
    caller.require(MANAGE)
    return _kick_off(request, caller, ExportJob.Level.SYSTEM)


@_guarded
def export_patients(request: HttpRequest, caller: Caller) -> HttpResponse:
    """Patient-level `$export`: the Patient compartment of every patient of the clinic."""
    caller.require(MANAGE)
    return _kick_off(request, caller, ExportJob.Level.PATIENT)


@_guarded
def export_group(request: HttpRequest, caller: Caller, group_id: str) -> HttpResponse:
    """Group-level `$export`. A Group is `lot-<id>`: the patients exposed to a lot, what a
    regulator asks for after an outbreak."""
    caller.require(MANAGE)
    digits = group_id.removeprefix("lot-")
    if not group_id.startswith("lot-") or not digits.isdigit() or len(digits) > 18:
        raise Http404(f"No Group with id {group_id}: a Group is lot-<lot id>.")
    try:
        lot = access.access_lot(caller, int(digits), MANAGE)
    except Http404:
        raise Http404(f"No Group with id {group_id}.") from None
    return _kick_off(request, caller, ExportJob.Level.GROUP, lot)


def _export_job(caller: Caller, export_id: str) -> ExportJob:
    """The caller's clinic's job (a manager's only); a job past its retention is gone."""
    caller.require(MANAGE)
    if not export_id.isdigit() or len(export_id) > 18:
        raise Http404(f"No export {export_id}.")
    try:
        job = access.access_export_job(caller, int(export_id))
    except Http404:
        raise Http404(f"No export {export_id}.") from None
    if bulk.expired(job):
        raise Http404(f"Export {export_id} has expired; its files were deleted.")
    return job


@guarded_for(("GET", "HEAD", "DELETE"))
def export_status(request: HttpRequest, caller: Caller, export_id: str) -> HttpResponse:
    """The status of an export: 202 with X-Progress while it runs, then the manifest; a
    failure as an OperationOutcome; DELETE cancels it or deletes its files."""
    job = _export_job(caller, export_id)
    if request.method == "DELETE":
        bulk.do_delete(job)
        return _information(202, f"Export {job.pk} is deleted.")
    if job.status in (ExportJob.Status.PENDING, ExportJob.Status.RUNNING):
        response = _information(202, f"Export {job.pk}: {job.progress or 'waiting'}.")
        response["X-Progress"] = job.progress or "waiting for the worker"
        response["Retry-After"] = "10"
        return response
    if job.status == ExportJob.Status.FAILED:
        return outcome(500, f"Export {job.pk} failed: {job.error}")
    assert job.transaction_time is not None and job.finished_at is not None
    manifest = {
        "transactionTime": job.transaction_time.isoformat(),
        "request": job.request_url,
        "requiresAccessToken": True,
        "output": [
            {
                "type": o["type"],
                "url": request.build_absolute_uri(
                    reverse("fhir_export_file", args=[job.pk, f"{o['type']}.ndjson"])
                ),
                "count": o["count"],
            }
            for o in job.output
        ],
        "error": [],
    }
    response = HttpResponse(json.dumps(manifest), content_type="application/json")
    response["Expires"] = http_date((job.finished_at + bulk.retention()).timestamp())
    return response


@_guarded
def export_file(
    request: HttpRequest, caller: Caller, export_id: str, file_name: str
) -> HttpResponse:
    """One of a finished export's NDJSON files, streamed from the disk."""
    job = _export_job(caller, export_id)
    names = {f"{o['type']}.ndjson" for o in job.output}
    path = bulk.directory(job) / file_name
    if job.status != ExportJob.Status.DONE or file_name not in names or not path.is_file():
        raise Http404(f"Export {job.pk} has no file {file_name}.")
    # Whoever downloads a file has read the records of every patient in the export.
    access.audit_list(
        caller,
        f"fhir $export file {file_name}",
        job.patient_ids,
        action=AuditEvent.Action.EXPORT,
        export=job.pk,
    )
    # Streamed a block at a time (FileResponse); typed as the other views' answers are.
    streamed: Any = FileResponse(path.open("rb"), content_type=NDJSON)
    return streamed
