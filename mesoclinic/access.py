"""Who may have what: the one place that answers "may this caller have this object?".

Modelled on Zulip's `access_stream_by_id`. Every web view, API endpoint, PDF, photo, feed and
the admin builds a `Caller` once (`caller_from_request` for a signed-in browser,
`caller_from_token` for an API bearer token, `caller_from_link` for the holder of a signed
link) and fetches each object through one function per kind:

    course = access_course(caller, course_id, need=CLINICAL)

The answer is the object, or:
- `PermissionDenied` (403) when the caller may not act at this level at all: anonymous, a
  deactivated user, a user with no membership, a role outside `need`;
- `Http404` when the object is outside what the caller may know exists: another clinic's
  object, another patient's record, anything a signed link is not for.

`need` is the set of roles that may act. The levels the product uses are `READ` (any staff:
front desk, practitioner, manager), `CLINICAL` (practitioner or manager) and `MANAGE`
(manager). `OWN` adds the patient themself to `READ`, for the pages a patient's own login will
read; `LINK` admits the holder of a signed link for that object.

Reads of patient data are audited here too: pass `view=True` to an `access_*` function to
record a VIEW naming the patient, or call `audit_view` / `audit_list` for a page that shows
several patients (one row per patient, written in one insert).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.db.models import Model, OuterRef, QuerySet, Subquery
from django.http import Http404, HttpRequest

from mesoclinic.accounts.models import (
    AuditEvent,
    Clinic,
    Membership,
    PractitionerLicence,
    audit,
    audit_many,
)
from mesoclinic.billing.models import Invoice, Package, Payment, PriceItem, Quote
from mesoclinic.courses.models import AllergyTest, Course, FollowUp, Session, SideEffect
from mesoclinic.fhir.models import ExportJob, SmartApp
from mesoclinic.formulary.models import Lot, Product, Vial
from mesoclinic.imports.models import ImportJob
from mesoclinic.notify.models import RecallNotice
from mesoclinic.outcomes.models import Measurement, Photo, PhotoConsent
from mesoclinic.patients.models import (
    Allergy,
    Consent,
    Medication,
    Patient,
    Screening,
    ScreeningForm,
)
from mesoclinic.portal.models import Message
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.reminders.models import ChangeRequest
from mesoclinic.safety.models import AdverseEvent, SafetyAlert, WatchPrompt
from mesoclinic.scheduling.models import (
    Appointment,
    CalendarFeed,
    Holiday,
    Room,
    WorkingException,
)
from mesoclinic.site.models import Question

Role = Membership.Role

# The levels of action. A level is the set of roles that may act at it.
READ = frozenset({Role.MANAGER, Role.PRACTITIONER, Role.FRONT_DESK})
CLINICAL = frozenset({Role.MANAGER, Role.PRACTITIONER})
MANAGE = frozenset({Role.MANAGER})
# Money: the front desk issues invoices and takes payments; credit notes and refunds are a
# manager's (MANAGE).
MONEY = frozenset({Role.MANAGER, Role.FRONT_DESK})
# Not membership roles: the patient's own login, and the holder of a signed link.
PATIENT = "patient"
LINK = "link"
OWN = READ | {PATIENT}
BY_LINK = frozenset({LINK})
# A patient's own invoices and quotes, in the portal, beside the staff who handle money.
OWN_MONEY = MONEY | {PATIENT}

# The names the web views and API endpoints use for two of the levels (api/auth.py and
# web/context.py pass them on); defined here only, beside the levels themselves.
ALL_STAFF = READ
MANAGER = MANAGE

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class SignedLink:
    """What a signed link is for: a reminder's appointment, an infection-watch prompt, or a
    calendar feed (a practitioner's visits or a patient's)."""

    kind: str  # "appointment", "watch", "notice" or "feed"
    object_id: int
    clinic_id: int | None = None
    patient_id: int | None = None
    practitioner_id: int | None = None


@dataclass(frozen=True)
class Caller:
    """Everyone who can ask for something. Exactly one of these holds:
    - `user` is None and `link` is None: anonymous;
    - `user` is set and not active: a deactivated user, who may have nothing;
    - `membership` is set: staff acting in that membership's clinic and role;
    - `patient` is set: a patient's own login, who sees only their own records; or a browser
      a staff member handed to the patient (the kiosk, `via` "kiosk"), whose `user` is that
      staff member and which sees only that patient's records, as the patient's login would;
    - `link` is set: the holder of a signed link, who sees only what the link is for;
    - a signed-in user with none of those: a member of no clinic, who may have nothing.
    `via` is the channel written on audit rows ("web", "api", "link")."""

    user: Any = None
    membership: Membership | None = None
    patient: Patient | None = None
    link: SignedLink | None = None
    via: str = "web"

    @property
    def is_anonymous(self) -> bool:
        return self.user is None and self.link is None

    @property
    def is_active(self) -> bool:
        if self.link is not None:
            return True
        return self.user is not None and bool(self.user.is_active)

    @property
    def role(self) -> str | None:
        """The role the caller acts in: a membership role, PATIENT, LINK or None."""
        if not self.is_active:
            return None
        if self.membership is not None:
            return str(self.membership.role)
        if self.patient is not None:
            return PATIENT
        if self.link is not None:
            return LINK
        return None

    @property
    def clinic_id(self) -> int | None:
        if self.membership is not None:
            return self.membership.clinic_id
        if self.patient is not None:
            return self.patient.clinic_id
        if self.link is not None:
            return self.link.clinic_id
        return None

    @property
    def clinic(self) -> Clinic:
        """The staff caller's clinic; 403 for anyone who is not staff."""
        return self.require(READ).clinic

    def require(self, need: frozenset[str]) -> Membership:
        """The staff membership the caller acts in, or 403 if they are not staff at `need`."""
        _check(self, need)
        if self.membership is None:
            raise PermissionDenied("This account is not a member of a clinic.")
        return self.membership

    def may(self, need: frozenset[str]) -> bool:
        """Whether the caller acts at `need`, without raising."""
        return self.role in need


# Building a caller.

# The clinic a browser session acts in, for a user who belongs to several.
SESSION_KEY = "clinic_id"


def memberships(request: HttpRequest) -> list[Membership]:
    """Every clinic the signed-in user belongs to, by clinic name. Cached on the request."""
    if not hasattr(request, "_memberships"):
        request._memberships = (  # type: ignore[attr-defined]
            list(
                Membership.objects.select_related("clinic")
                .filter(user=request.user)
                .order_by("clinic__name", "clinic_id")
            )
            if request.user.is_authenticated
            else []
        )
    found: list[Membership] = request._memberships  # type: ignore[attr-defined]
    return found


def membership(request: HttpRequest) -> Membership | None:
    """The membership the user acts in: the clinic chosen in this browser session, or their
    only (or first) clinic."""
    mine = memberships(request)
    chosen = request.session.get(SESSION_KEY) if mine else None
    return next((m for m in mine if m.clinic_id == chosen), None) or (mine[0] if mine else None)


# The tablet handover (web/kiosk.py): a staff member's browser session handed to one patient
# keeps {"staff_id", "patient_id", "clinic_id", "clinical"} under this key.
KIOSK_KEY = "kiosk"


def kiosk_of(request: HttpRequest) -> dict[str, Any] | None:
    """The handover this browser session is in, or None. It holds only while the staff member
    who handed the tablet over is the one signed in."""
    session = getattr(request, "session", None)
    state = session.get(KIOSK_KEY) if session is not None else None
    if not isinstance(state, dict):
        return None
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or state.get("staff_id") != user.pk:
        return None
    return state


def caller_from_request(request: HttpRequest) -> Caller:
    """The caller a signed-in browser is: the membership chosen for this browser session
    (web/context.py keeps the choice), else the patient's own login. A browser handed to a
    patient (the kiosk) is that patient, whoever is signed in. Cached on the request."""
    cached = getattr(request, "_access_caller", None)
    if isinstance(cached, Caller):
        return cached
    user = request.user if request.user.is_authenticated else None
    found = None
    own = None
    via = "web"
    handed = kiosk_of(request)
    if user is not None and user.is_active and handed is not None:
        # The staff member must still belong to the patient's clinic; no membership acts.
        if any(m.clinic_id == handed["clinic_id"] for m in memberships(request)):
            own = (
                Patient.objects.filter(pk=handed["patient_id"], clinic_id=handed["clinic_id"])
                .select_related("clinic")
                .first()
            )
        via = "kiosk"
    elif user is not None and user.is_active:
        found = membership(request)
        if found is None:
            own = Patient.objects.filter(user=user).select_related("clinic").first()
    made = Caller(user=user, membership=found, patient=own, via=via)
    request._access_caller = made  # type: ignore[attr-defined]
    return made


def caller_from_token(user: Any, membership: Membership | None) -> Caller:
    """The caller an API bearer token is: its user acting in the token's membership, or the
    patient's own login when the token has no membership."""
    own = None
    if membership is None and user is not None and user.is_active:
        own = Patient.objects.filter(user=user).select_related("clinic").first()
    return Caller(user=user, membership=membership, patient=own, via="api")


def caller_for_appointment_link(appointment_id: int) -> Caller:
    """The holder of a reminder's confirm or change link, whose signature was checked
    (reminders/links.py): it is for one appointment and nothing else."""
    return Caller(link=SignedLink(kind="appointment", object_id=appointment_id), via="link")


def caller_for_watch_link(prompt_id: int) -> Caller:
    """The holder of an infection-watch questionnaire link, whose signature was checked
    (safety/links.py): it is for one prompt and nothing else."""
    return Caller(link=SignedLink(kind="watch", object_id=prompt_id), via="link")


def caller_for_notice_link(notice_id: int) -> Caller:
    """The holder of a recall notice's link, whose signature was checked (notify/links.py):
    it is for that one notice and nothing else."""
    return Caller(link=SignedLink(kind="notice", object_id=notice_id), via="link")


def caller_for_feed(feed: CalendarFeed) -> Caller:
    """The holder of a calendar feed's address: a practitioner's visits or a patient's."""
    return Caller(
        link=SignedLink(
            kind="feed",
            object_id=feed.pk,
            clinic_id=feed.clinic_id,
            patient_id=feed.patient_id,
            practitioner_id=feed.user_id,
        ),
        via="link",
    )


ANONYMOUS = Caller(via="web")


# The checks every kind shares.


def _check(caller: Caller, need: frozenset[str]) -> None:
    """403 unless the caller acts at `need`. A refused role is named as the API has always
    named it (clients and tests read the role and the roles it needs from the detail)."""
    if caller.is_anonymous:
        raise PermissionDenied("Sign in first.")
    if not caller.is_active:
        raise PermissionDenied("This account is deactivated.")
    role = caller.role
    if role is None:
        raise PermissionDenied("This account is not a member of a clinic.")
    if role not in need:
        if role in (PATIENT, LINK):
            # A patient's own login or a link: the staff's pages are not theirs.
            raise PermissionDenied("This account is not a member of a clinic.")
        # In the words the staff pages use for roles ("front desk"), never the stored keys.
        allowed = " or ".join(sorted(_role_words(r) for r in need - {PATIENT, LINK}))
        raise PermissionDenied(
            f"Your role ({_role_words(role)}) may not do this; it needs: {allowed}."
        )


def _role_words(role: str) -> str:
    return str(Role(role).label).lower()


@dataclass(frozen=True)
class _Kind:
    """How to find one kind of object and whose it is."""

    model: type[Model]
    related: tuple[str, ...]
    clinic: str  # the lookup from the object to its clinic's id
    patient: str | None  # the lookup to its patient's id, if it belongs to one
    links: tuple[tuple[str, str], ...] = ()  # (link kind, lookup the link's object id matches)
    label: str = "object"
    # The manager the rows come from: a staff list includes deactivated members.
    manager: str = "_default_manager"


def _scope(caller: Caller, kind: _Kind, qs: QuerySet[Any]) -> QuerySet[Any]:
    """`qs` limited to what the caller may know exists (the caller is already checked)."""
    if caller.membership is not None:
        return qs.filter(**{kind.clinic: caller.membership.clinic_id})
    if caller.patient is not None:
        if kind.patient is None:
            return qs.none()
        return qs.filter(**{kind.clinic: caller.patient.clinic_id, kind.patient: caller.patient.pk})
    link = caller.link
    lookup = dict(kind.links).get(link.kind) if link is not None else None
    if link is None or lookup is None:
        return qs.none()
    if link.clinic_id is not None:
        qs = qs.filter(**{kind.clinic: link.clinic_id})
    if link.kind == "feed":
        # A patient's feed shows that patient's visits; a practitioner's feed, theirs.
        if link.patient_id is not None and kind.patient is not None:
            return qs.filter(**{kind.patient: link.patient_id})
        return qs.filter(**{lookup: link.practitioner_id})
    return qs.filter(**{lookup: link.object_id})


def _patient_id_of(obj: Model, kind: _Kind) -> int | None:
    if kind.patient is None:
        return None
    target: Any = obj
    for part in kind.patient.split("__"):
        target = getattr(target, part)
    return int(target) if target is not None else None


def _fetch(
    caller: Caller, kind: _Kind, pk: Any, need: frozenset[str], view: bool, **filters: Any
) -> Any:
    _check(caller, need)
    qs = _scope(caller, kind, getattr(kind.model, kind.manager).select_related(*kind.related))
    try:
        found = qs.filter(pk=pk, **filters).first()
    except (TypeError, ValueError, OverflowError):
        found = None
    if found is None:
        raise Http404(f"No such {kind.label}.")
    if view:
        audit_view(caller, found, patient_id=_patient_id_of(found, kind))
    return found


_PATIENT = _Kind(
    Patient, ("clinic",), "clinic_id", "pk", (("appointment", "appointments"),), "patient"
)
_ALLERGY = _Kind(
    Allergy, ("patient__clinic", "ingredient"), "patient__clinic_id", "patient_id", (), "allergy"
)
_MEDICATION = _Kind(
    Medication, ("patient__clinic",), "patient__clinic_id", "patient_id", (), "medication"
)
_COURSE = _Kind(Course, ("clinic", "patient", "protocol"), "clinic_id", "patient_id", (), "course")
_TEST = _Kind(
    AllergyTest,
    ("course__clinic", "course__patient", "course__protocol"),
    "course__clinic_id",
    "course__patient_id",
    (),
    "allergy test",
)
_SESSION = _Kind(
    Session,
    ("course__clinic", "course__patient", "course__protocol"),
    "course__clinic_id",
    "course__patient_id",
    (("watch", "watch_prompts"),),
    "session",
)
_SIDE_EFFECT = _Kind(
    SideEffect,
    ("session__course__clinic", "session__course__protocol", "session__course__patient"),
    "session__course__clinic_id",
    "session__course__patient_id",
    (),
    "side effect",
)
_FOLLOW_UP = _Kind(
    FollowUp,
    ("clinic", "session__course__protocol", "session__course__patient"),
    "clinic_id",
    "session__course__patient_id",
    (),
    "follow-up",
)
_CONSENT = _Kind(
    Consent,
    ("patient__clinic", "template", "witnessed_by"),
    "patient__clinic_id",
    "patient_id",
    (),
    "consent",
)
_SCREENING = _Kind(
    Screening, ("patient__clinic", "form"), "patient__clinic_id", "patient_id", (), "screening"
)
_SCREENING_FORM = _Kind(ScreeningForm, ("clinic",), "clinic_id", None, (), "screening form")
_PHOTO = _Kind(Photo, ("clinic", "course__patient"), "clinic_id", "course__patient_id", (), "photo")
_MEASUREMENT = _Kind(
    Measurement, ("clinic", "course"), "clinic_id", "course__patient_id", (), "measurement"
)
_APPOINTMENT = _Kind(
    Appointment,
    (
        "clinic",
        "patient",
        "practitioner",
        "room",
        "course__protocol",
        "created_by",
        "cancelled_by",
        "no_show_by",
    ),
    "clinic_id",
    "patient_id",
    (("appointment", "pk"), ("feed", "practitioner_id")),
    "visit",
)
_LOT = _Kind(Lot, ("product", "recalled_by"), "product__clinic_id", None, (), "lot")
_PRODUCT = _Kind(Product, (), "clinic_id", None, (), "product")
_INVOICE = _Kind(
    Invoice, ("clinic", "patient", "credits"), "clinic_id", "patient_id", (), "invoice"
)
_PAYMENT = _Kind(
    Payment, ("clinic", "patient", "invoice"), "clinic_id", "patient_id", (), "payment"
)
_PRICE = _Kind(PriceItem, (), "clinic_id", None, (), "price")
_QUOTE = _Kind(
    Quote,
    ("clinic", "patient", "course__protocol", "package__invoice", "issued_by", "acceptance"),
    "clinic_id",
    "patient_id",
    (),
    "quote",
)
_PACKAGE = _Kind(
    Package, ("clinic", "patient", "course", "invoice"), "clinic_id", "patient_id", (), "package"
)
_VIAL = _Kind(Vial, ("lot__product",), "lot__product__clinic_id", None, (), "vial")
_EVENT = _Kind(
    AdverseEvent, ("clinic", "course__patient", "session"), "clinic_id", "patient_id", (), "event"
)
_ALERT = _Kind(
    SafetyAlert,
    ("clinic", "lot__product", "practitioner", "handled_by", "run"),
    "clinic_id",
    None,
    (),
    "alert",
)
_MEMBER = _Kind(Membership, ("user", "clinic"), "clinic_id", None, (), "member", "every")
_LICENCE = _Kind(PractitionerLicence, ("user", "clinic"), "clinic_id", None, (), "licence")
_CHANGE_REQUEST = _Kind(
    ChangeRequest,
    ("appointment__patient", "clinic"),
    "clinic_id",
    "appointment__patient_id",
    (),
    "request",
)
_WATCH = _Kind(
    WatchPrompt,
    ("clinic", "session__course__patient"),
    "clinic_id",
    "session__course__patient_id",
    (("watch", "pk"),),
    "questionnaire",
)
_IMPORT = _Kind(ImportJob, ("clinic", "created_by"), "clinic_id", None, (), "import")
_EXPORT = _Kind(ExportJob, ("clinic", "requested_by"), "clinic_id", None, (), "export")
_SMART_APP = _Kind(
    SmartApp, ("clinic", "application", "registered_by"), "clinic_id", None, (), "app"
)
_NOTICE = _Kind(
    RecallNotice,
    ("clinic", "patient", "lot"),
    "clinic_id",
    "patient_id",
    (("notice", "pk"),),
    "notice",
)

_MESSAGE = _Kind(Message, ("clinic", "patient", "author"), "clinic_id", "patient_id", (), "message")


# One public function per kind.


def access_patient(
    caller: Caller, patient_id: int, need: frozenset[str] = READ, *, view: bool = False
) -> Patient:
    found: Patient = _fetch(caller, _PATIENT, patient_id, need, view)
    return found


def access_allergy(
    caller: Caller, allergy_id: int, need: frozenset[str] = CLINICAL, *, view: bool = False
) -> Allergy:
    found: Allergy = _fetch(caller, _ALLERGY, allergy_id, need, view)
    return found


def access_medication(
    caller: Caller, medication_id: int, need: frozenset[str] = CLINICAL, *, view: bool = False
) -> Medication:
    found: Medication = _fetch(caller, _MEDICATION, medication_id, need, view)
    return found


def access_course(
    caller: Caller, course_id: int, need: frozenset[str] = READ, *, view: bool = False
) -> Course:
    found: Course = _fetch(caller, _COURSE, course_id, need, view)
    return found


def access_allergy_test(
    caller: Caller, test_id: int, need: frozenset[str] = READ, *, view: bool = False
) -> AllergyTest:
    found: AllergyTest = _fetch(caller, _TEST, test_id, need, view)
    return found


def access_session(
    caller: Caller, session_id: int, need: frozenset[str] = READ, *, view: bool = False
) -> Session:
    found: Session = _fetch(caller, _SESSION, session_id, need, view)
    return found


def access_side_effect(
    caller: Caller, effect_id: int, need: frozenset[str] = READ, *, view: bool = False
) -> SideEffect:
    found: SideEffect = _fetch(caller, _SIDE_EFFECT, effect_id, need, view)
    return found


def access_follow_up(
    caller: Caller, follow_up_id: int, need: frozenset[str] = CLINICAL, *, view: bool = False
) -> FollowUp:
    found: FollowUp = _fetch(caller, _FOLLOW_UP, follow_up_id, need, view)
    return found


def access_consent(
    caller: Caller, consent_id: int, need: frozenset[str] = READ, *, view: bool = False
) -> Consent:
    found: Consent = _fetch(caller, _CONSENT, consent_id, need, view)
    return found


def access_photo(
    caller: Caller, photo_id: int, need: frozenset[str] = CLINICAL, *, view: bool = False
) -> Photo:
    found: Photo = _fetch(caller, _PHOTO, photo_id, need, view)
    return found


def access_marketing_photo(clinic: Clinic, photo_id: int) -> Photo:
    """A photo for the clinic's public gallery, for anyone: only while its patient's latest
    marketing consent is granted, checked on every request (a withdrawal hides it at once).
    Any other photo is a 404, as if it did not exist."""
    from mesoclinic.outcomes.photo_actions import marketing_photos

    found = marketing_photos(clinic).filter(pk=photo_id).first()
    if found is None:
        raise Http404("No such photo.")
    return found


def access_measurement(
    caller: Caller, measurement_id: int, need: frozenset[str] = READ, *, view: bool = False
) -> Measurement:
    found: Measurement = _fetch(caller, _MEASUREMENT, measurement_id, need, view)
    return found


def access_appointment(
    caller: Caller, appointment_id: int, need: frozenset[str] = READ, *, view: bool = False
) -> Appointment:
    found: Appointment = _fetch(caller, _APPOINTMENT, appointment_id, need, view)
    return found


def access_lot(caller: Caller, lot_id: int, need: frozenset[str] = READ) -> Lot:
    found: Lot = _fetch(caller, _LOT, lot_id, need, False)
    return found


def access_invoice(
    caller: Caller, invoice_id: int, need: frozenset[str] = MONEY, *, view: bool = False
) -> Invoice:
    found: Invoice = _fetch(caller, _INVOICE, invoice_id, need, view)
    return found


def access_payment(caller: Caller, payment_id: int, need: frozenset[str] = MONEY) -> Payment:
    found: Payment = _fetch(caller, _PAYMENT, payment_id, need, False)
    return found


def access_price(caller: Caller, price_id: int, need: frozenset[str] = MANAGE) -> PriceItem:
    found: PriceItem = _fetch(caller, _PRICE, price_id, need, False)
    return found


def access_quote(
    caller: Caller, quote_id: int, need: frozenset[str] = MONEY, *, view: bool = False
) -> Quote:
    found: Quote = _fetch(caller, _QUOTE, quote_id, need, view)
    return found


def access_package(caller: Caller, package_id: int, need: frozenset[str] = MANAGE) -> Package:
    found: Package = _fetch(caller, _PACKAGE, package_id, need, False)
    return found


def quotes_for(caller: Caller, need: frozenset[str] = MONEY) -> QuerySet[Quote]:
    return _all(caller, _QUOTE, need)


def invoices_for(caller: Caller, need: frozenset[str] = MONEY) -> QuerySet[Invoice]:
    return _all(caller, _INVOICE, need)


def prices_for(caller: Caller, need: frozenset[str] = MONEY) -> QuerySet[PriceItem]:
    return _all(caller, _PRICE, need)


def access_vial(caller: Caller, vial_id: int, need: frozenset[str] = READ) -> Vial:
    found: Vial = _fetch(caller, _VIAL, vial_id, need, False)
    return found


def access_product(caller: Caller, product_id: int, need: frozenset[str] = READ) -> Product:
    found: Product = _fetch(caller, _PRODUCT, product_id, need, False)
    return found


def access_event(
    caller: Caller, event_id: int, need: frozenset[str] = CLINICAL, *, view: bool = False
) -> AdverseEvent:
    found: AdverseEvent = _fetch(caller, _EVENT, event_id, need, view)
    return found


def access_alert(caller: Caller, alert_id: int, need: frozenset[str] = MANAGE) -> SafetyAlert:
    found: SafetyAlert = _fetch(caller, _ALERT, alert_id, need, False)
    return found


def access_member(caller: Caller, membership_id: int, need: frozenset[str] = MANAGE) -> Membership:
    found: Membership = _fetch(caller, _MEMBER, membership_id, need, False)
    return found


def access_licence(
    caller: Caller, licence_id: int, need: frozenset[str] = MANAGE
) -> PractitionerLicence:
    found: PractitionerLicence = _fetch(caller, _LICENCE, licence_id, need, False)
    return found


def access_change_request(
    caller: Caller, request_id: int, need: frozenset[str] = READ
) -> ChangeRequest:
    found: ChangeRequest = _fetch(caller, _CHANGE_REQUEST, request_id, need, False)
    return found


def access_watch_prompt(
    caller: Caller, prompt_id: int, need: frozenset[str] = BY_LINK, *, view: bool = False
) -> WatchPrompt:
    found: WatchPrompt = _fetch(caller, _WATCH, prompt_id, need, view)
    return found


def access_notice(
    caller: Caller, notice_id: int, need: frozenset[str] = OWN | BY_LINK, *, view: bool = False
) -> RecallNotice:
    """A recall notice: its patient (by link, or later in the portal) or the clinic's staff."""
    found: RecallNotice = _fetch(caller, _NOTICE, notice_id, need, view)
    return found


def access_import_job(caller: Caller, job_id: int, need: frozenset[str] = MANAGE) -> ImportJob:
    found: ImportJob = _fetch(caller, _IMPORT, job_id, need, False)
    return found


def access_export_job(caller: Caller, job_id: int, need: frozenset[str] = MANAGE) -> ExportJob:
    """A FHIR bulk `$export` job: the clinic's managers only (it holds every record)."""
    found: ExportJob = _fetch(caller, _EXPORT, job_id, need, False)
    return found


def access_smart_app(caller: Caller, app_id: int, need: frozenset[str] = MANAGE) -> SmartApp:
    """An app registered for SMART App Launch: the clinic's managers only."""
    found: SmartApp = _fetch(caller, _SMART_APP, app_id, need, False)
    return found


def smart_apps_for(caller: Caller, need: frozenset[str] = MANAGE) -> QuerySet[SmartApp]:
    return _all(caller, _SMART_APP, need)


def access_protocol(
    caller: Caller, key: str, version: int | None = None, need: frozenset[str] = MANAGE
) -> ClinicProtocol:
    """The clinic's current version of a protocol (or the version asked for)."""
    acting = caller.require(need)
    versions = ClinicProtocol.objects.select_related("clinic", "created_by").filter(
        clinic_id=acting.clinic_id, key=key
    )
    if version is not None:
        versions = versions.filter(version=version)
    found = versions.order_by("-version").first()
    if found is None:
        raise Http404("No such protocol in this clinic.")
    return found


# The clinic's setup: rooms, holidays, a practitioner's time off and extra hours.
_ROOM = _Kind(Room, ("clinic",), "clinic_id", None, (), "room")
_HOLIDAY = _Kind(Holiday, ("clinic",), "clinic_id", None, (), "holiday")
_EXCEPTION = _Kind(WorkingException, ("clinic", "user"), "clinic_id", None, (), "change of hours")


# Visitors' questions from the public site: answered and published by clinical staff.
_QUESTION = _Kind(Question, ("clinic", "answered_by"), "clinic_id", None, (), "question")


def access_question(caller: Caller, question_id: int, need: frozenset[str] = CLINICAL) -> Question:
    found: Question = _fetch(caller, _QUESTION, question_id, need, False)
    return found


def questions_for(caller: Caller, need: frozenset[str] = CLINICAL) -> QuerySet[Question]:
    return _all(caller, _QUESTION, need)


def access_room(caller: Caller, room_id: int, need: frozenset[str] = MANAGE) -> Room:
    found: Room = _fetch(caller, _ROOM, room_id, need, False)
    return found


def access_holiday(caller: Caller, holiday_id: int, need: frozenset[str] = MANAGE) -> Holiday:
    found: Holiday = _fetch(caller, _HOLIDAY, holiday_id, need, False)
    return found


def access_working_exception(
    caller: Caller, exception_id: int, need: frozenset[str] = MANAGE
) -> WorkingException:
    found: WorkingException = _fetch(caller, _EXCEPTION, exception_id, need, False)
    return found


def rooms_for(caller: Caller, need: frozenset[str] = READ) -> QuerySet[Room]:
    return _all(caller, _ROOM, need)


def holidays_for(caller: Caller, need: frozenset[str] = READ) -> QuerySet[Holiday]:
    return _all(caller, _HOLIDAY, need)


# Querysets for lists: what the caller may see of each kind, for a list or a search.


def _all(caller: Caller, kind: _Kind, need: frozenset[str]) -> QuerySet[Any]:
    _check(caller, need)
    return _scope(caller, kind, getattr(kind.model, kind.manager).all())


def patients_for(caller: Caller, need: frozenset[str] = READ) -> QuerySet[Patient]:
    return _all(caller, _PATIENT, need)


def courses_for(caller: Caller, need: frozenset[str] = READ) -> QuerySet[Course]:
    return _all(caller, _COURSE, need)


def allergy_tests_for(caller: Caller, need: frozenset[str] = READ) -> QuerySet[AllergyTest]:
    return _all(caller, _TEST, need)


def sessions_for(caller: Caller, need: frozenset[str] = READ) -> QuerySet[Session]:
    return _all(caller, _SESSION, need)


def side_effects_for(caller: Caller, need: frozenset[str] = READ) -> QuerySet[SideEffect]:
    return _all(caller, _SIDE_EFFECT, need)


def follow_ups_for(caller: Caller, need: frozenset[str] = CLINICAL) -> QuerySet[FollowUp]:
    return _all(caller, _FOLLOW_UP, need)


def screenings_for(caller: Caller, need: frozenset[str] = READ) -> QuerySet[Screening]:
    return _all(caller, _SCREENING, need)


def screening_forms_for(caller: Caller, need: frozenset[str] = READ) -> QuerySet[ScreeningForm]:
    """Every version of the caller's clinic's screening questionnaire: for staff, as the JSON
    API's `/screening-form` is (a patient answers the form in the portal)."""
    return _all(caller, _SCREENING_FORM, need)


def consents_for(caller: Caller, need: frozenset[str] = READ) -> QuerySet[Consent]:
    return _all(caller, _CONSENT, need)


def photos_for(caller: Caller, need: frozenset[str] = CLINICAL) -> QuerySet[Photo]:
    return _all(caller, _PHOTO, need)


def clinical_consent_covers(photos: QuerySet[Photo]) -> QuerySet[Photo]:
    """`photos` limited to those the patient's clinical photo consent covers: the decision in
    force when the photo was taken was a yes, and the patient's latest decision still is. The
    rule is photo_actions.has_consent's (the latest decision per purpose counts), in SQL, so
    that a list or an export is one query. A withdrawal keeps the photos in the chart for
    clinical staff (docs/photos.md) but stops them leaving the clinic's own pages, such as the
    FHIR API, at once."""
    decisions = PhotoConsent.objects.filter(
        patient=OuterRef("course__patient"), purpose=PhotoConsent.Purpose.CLINICAL
    ).order_by("-decided_at", "-id")
    return photos.annotate(
        clinical_consent_now=Subquery(decisions.values("granted")[:1]),
        clinical_consent_then=Subquery(
            decisions.filter(decided_at__lte=OuterRef("taken_at")).values("granted")[:1]
        ),
    ).filter(clinical_consent_now=True, clinical_consent_then=True)


def consented_photos_for(caller: Caller, need: frozenset[str] = CLINICAL) -> QuerySet[Photo]:
    """The photos the caller may see (`photos_for`) that the patient's clinical photo consent
    covers now (`clinical_consent_covers`): what may be shared beyond the chart."""
    return clinical_consent_covers(photos_for(caller, need))


def measurements_for(caller: Caller, need: frozenset[str] = READ) -> QuerySet[Measurement]:
    return _all(caller, _MEASUREMENT, need)


def appointments_for(caller: Caller, need: frozenset[str] = READ) -> QuerySet[Appointment]:
    return _all(caller, _APPOINTMENT, need)


def lots_for(caller: Caller, need: frozenset[str] = READ) -> QuerySet[Lot]:
    return _all(caller, _LOT, need)


def vials_for(caller: Caller, need: frozenset[str] = READ) -> QuerySet[Vial]:
    return _all(caller, _VIAL, need)


def products_for(caller: Caller, need: frozenset[str] = READ) -> QuerySet[Product]:
    return _all(caller, _PRODUCT, need)


def events_for(caller: Caller, need: frozenset[str] = CLINICAL) -> QuerySet[AdverseEvent]:
    return _all(caller, _EVENT, need)


def alerts_for(caller: Caller, need: frozenset[str] = MANAGE) -> QuerySet[SafetyAlert]:
    return _all(caller, _ALERT, need)


def members_for(caller: Caller, need: frozenset[str] = MANAGE) -> QuerySet[Membership]:
    return _all(caller, _MEMBER, need)


def notices_for(caller: Caller, need: frozenset[str] = OWN) -> QuerySet[RecallNotice]:
    return _all(caller, _NOTICE, need)


def messages_for(caller: Caller, need: frozenset[str] = OWN) -> QuerySet[Message]:
    """The secure messages the caller may see: a patient's own thread, or the clinic's."""
    return _all(caller, _MESSAGE, need)


def watch_prompts_for(caller: Caller, need: frozenset[str] = OWN) -> QuerySet[WatchPrompt]:
    return _all(caller, _WATCH, need)


def import_jobs_for(caller: Caller, need: frozenset[str] = MANAGE) -> QuerySet[ImportJob]:
    return _all(caller, _IMPORT, need)


def licences_for(caller: Caller, need: frozenset[str] = MANAGE) -> QuerySet[PractitionerLicence]:
    return _all(caller, _LICENCE, need)


def managed_clinic_ids(user: Any) -> list[int]:
    """The clinics whose admin pages a staff user may use: those they manage. A deactivated
    user manages nothing."""
    if user is None or not user.is_authenticated or not user.is_active or not user.is_staff:
        return []
    return list(
        Membership.objects.filter(user=user, role=Role.MANAGER).values_list("clinic_id", flat=True)
    )


# Auditing reads.


def _clinic_for_audit(caller: Caller) -> Clinic | None:
    """The clinic an audit row belongs to: a patient's or a link's read still belongs to the
    clinic's trail. An unsaved Clinic with only its key is enough for the foreign key."""
    if caller.membership is not None:
        return caller.membership.clinic
    if caller.clinic_id is not None:
        return Clinic(pk=caller.clinic_id)
    return None


def audit_view(caller: Caller, obj: Model, *, patient_id: int | None, **detail: Any) -> None:
    """Record that the caller read `obj`, of `patient_id`'s records."""
    clinic = _clinic_for_audit(caller)
    if caller.link is not None:
        detail.setdefault("link", caller.link.kind)
        # A link names only its object; the row belongs to the object's clinic.
        if clinic is None and getattr(obj, "clinic_id", None) is not None:
            clinic = Clinic(pk=obj.clinic_id)  # type: ignore[attr-defined]
    audit(
        clinic=clinic,
        user=caller.user,
        action=AuditEvent.Action.VIEW,
        obj=obj,
        patient_id=patient_id,
        via=caller.via,
        **detail,
    )


def audit_list(
    caller: Caller,
    what: str,
    patient_ids: Iterable[int | None],
    *,
    action: str = AuditEvent.Action.VIEW,
    **detail: Any,
) -> None:
    """Record a page or answer that showed several patients' records: one VIEW row per
    patient shown, each naming the page (`what`), written in one insert so that a list costs
    one query however long it is. Nothing is written when no patient was shown."""
    shown = sorted({pid for pid in patient_ids if pid is not None})
    if not shown:
        return
    extra: dict[str, Any] = {"page": what, **detail}
    if caller.link is not None:
        extra["link"] = caller.link.kind
    audit_many(
        clinic=_clinic_for_audit(caller),
        user=caller.user,
        action=action,
        via=caller.via,
        entries=[(Patient(pk=pid), pid, extra) for pid in shown],
    )
