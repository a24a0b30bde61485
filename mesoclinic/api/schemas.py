"""Request and response shapes of the JSON API. Each field is documented in the OpenAPI schema."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from ninja import Schema
from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, field_validator

from mesoclinic.lib import limits

# The largest primary key the databases store (a signed 64-bit integer). A larger number in a
# lookup overflows the database driver instead of finding nothing, so it is refused here.
MAX_ID = 2**63 - 1
FIRST_YEAR, LAST_YEAR = 1900, 2999


def check_plausible_year(value: dt.date) -> None:
    """Refuse a date or time outside 1900–2999: it is a typing mistake, and a year such as 1 or
    9999 overflows date arithmetic once it is moved into a clinic's time zone."""
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"must be between the years {FIRST_YEAR} and {LAST_YEAR}")


def _plausible_time(value: dt.datetime) -> dt.datetime:
    check_plausible_year(value)
    return value


def _plausible_date(value: dt.date) -> dt.date:
    check_plausible_year(value)
    return value


def _date_text(value: object) -> object:
    """A date is sent as ISO text. pydantic would also take a number as seconds since 1970,
    so that `0` became 1 January 1970; a number here is a mistake, not a date."""
    if not isinstance(value, str | dt.date):
        raise ValueError("must be a date written as text, e.g. 1990-05-17")
    return value


def _time_text(value: object) -> object:
    if not isinstance(value, str | dt.datetime):
        raise ValueError(
            "must be a date and time written as text with a time zone offset, "
            "e.g. 2025-03-01T10:00:00+01:00"
        )
    return value


# Every time the API accepts is ISO text, carries a time zone and falls in a plausible year;
# every date is ISO text in a plausible year.
When = Annotated[AwareDatetime, BeforeValidator(_time_text), AfterValidator(_plausible_time)]
Day = Annotated[dt.date, BeforeValidator(_date_text), AfterValidator(_plausible_date)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


def _wall_clock(value: dt.time) -> dt.time:
    if value.tzinfo is not None:
        raise ValueError("must be a time of day on the clinic's clock, without a time zone")
    return value


# A time of day on the clinic's wall clock ("16:00"): a zone would say nothing about the day's
# own offset, so one is refused rather than guessed.
ClockTime = Annotated[dt.time, AfterValidator(_wall_clock)]
# A key of a protocol, ingredient, area, side effect or refusal code.
Key = Annotated[str, Field(max_length=limits.KEY)]


class TokenIn(Schema):
    username: str = Field(max_length=150)
    password: str = Field(max_length=1000)
    clinic: Id | None = Field(
        None, description="Clinic id, needed only when the user belongs to several clinics."
    )


class TokenOut(Schema):
    token: str
    expires_at: dt.datetime
    clinic: int | None
    role: str | None


class PatientIn(Schema):
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    date_of_birth: Day
    sex: Literal["female", "male", "other", "unknown"] = "unknown"
    email: str = Field("", max_length=254)
    phone: str = Field("", max_length=30, pattern=r"^(\+?[0-9 ()\-.]{6,20})?$")
    address: str = Field("", max_length=limits.ADDRESS)
    emergency_name: str = Field("", max_length=200, description="Whom to call in an emergency.")
    emergency_relation: str = Field("", max_length=100)
    emergency_phone: str = Field("", max_length=30, pattern=r"^(\+?[0-9 ()\-.]{6,20})?$")
    guardian_name: str = Field(
        "", max_length=200, description="A parent or guardian: needed for a patient under 18."
    )
    guardian_relation: str = Field("", max_length=100)
    guardian_phone: str = Field("", max_length=30, pattern=r"^(\+?[0-9 ()\-.]{6,20})?$")
    guardian_email: str = Field("", max_length=254)
    sms_consent: bool = Field(
        False,
        description="The patient agreed to visit reminders and messages by text; the time of "
        "the agreement is recorded.",
    )
    allow_duplicate: bool = Field(
        False,
        description="Register even though a patient of the clinic has the same name and date "
        "of birth, phone or email (without it, such a registration is refused with 409 and "
        "the matches).",
    )

    @field_validator("email", "guardian_email")
    @classmethod
    def _email(cls, v: str) -> str:
        if v:
            try:
                validate_email(v)
            except DjangoValidationError:
                raise ValueError("is not a valid email address") from None
        return v

    @field_validator("first_name", "last_name")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v.strip()

    @field_validator("date_of_birth")
    @classmethod
    def _past(cls, v: dt.date) -> dt.date:
        if v > dt.date.today():
            raise ValueError("cannot be in the future")
        if v.year < 1900:
            raise ValueError("must be after 1900")
        return v


class AllergyIn(Schema):
    ingredient: str = Field(max_length=limits.KEY, description="Ingredient key, e.g. lidocaine.")
    reaction: str = Field("", max_length=200)


class ScreeningIn(Schema):
    answers: dict[str, Any] = Field(
        description="Every question key of the current form, each true or false."
    )
    screened_at: When | None = Field(
        None, description="When the patient answered; default now. Never in the future."
    )


class ScreeningOut(Schema):
    id: int
    result: Literal["eligible", "caution", "ineligible"]
    reasons: list[dict[str, str]]
    form_version: int
    screened_at: dt.datetime


class ConsentIn(Schema):
    signed_name: str = Field(min_length=1, max_length=200)
    method: Literal["typed", "drawn", "paper"] = "typed"
    signature: str = Field(
        "", max_length=limits.SIGNATURE, description="A drawn signature (SVG path or data URL)."
    )
    signed_at: When | None = None
    course: Id | None = Field(None, description="Take the use (indication, areas) from a course.")
    products: list[Id] | None = Field(
        None,
        max_length=200,
        description="Product ids covered; default every active product of the clinic.",
    )

    @field_validator("signed_name")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v


class ConsentOut(Schema):
    id: int
    template_version: int
    signed_name: str
    signed_at: dt.datetime
    method: str
    products: list[int]
    text_sha256: str


class CourseIn(Schema):
    protocol: str = Field(max_length=limits.KEY, description="Protocol key, e.g. cellulite.")
    indication: str | None = Field(
        None, max_length=30, description="Default: the protocol's first indication."
    )
    areas: list[Key] = Field(min_length=1, max_length=20)
    cadence_days: int
    planned_sessions: int
    first_session_on: Day | None = Field(
        None, description="Planned date of session 1; default the day the allergy wait ends."
    )
    products: list[Id] | None = Field(
        None,
        max_length=50,
        description="Product ids planned for the course; default the clinic's active "
        "products for the indication. A lot of any other product is refused.",
    )


class StopIn(Schema):
    reason: str = Field(max_length=limits.REASON)


class TestInjectionIn(Schema):
    lot: Id
    site: str = Field(min_length=1, max_length=100)
    given_at: When | None = None
    vial: Id | None = Field(
        None, description="The opened vial drawn from; default the lot's open vial, or a new one."
    )
    volume_ml: Decimal = Field(Decimal("0.10"), gt=0, le=5, max_digits=6, decimal_places=2)


class AllergyTestIn(Schema):
    given_at: When
    injections: list[TestInjectionIn] = Field(max_length=10)
    notes: str = Field("", max_length=limits.NOTES)


class AllergyReadingIn(Schema):
    """The reading of an allergy test (its sites 24 hours on); not a measurement's reading."""

    read_at: When
    result: Literal["none", "local", "systemic"]
    notes: str = Field("", max_length=limits.NOTES)


class InjectionIn(Schema):
    area: str = Field(max_length=limits.KEY)
    lot: Id = Field(description="Lot id.")
    volume_ml: Decimal = Field(gt=0, le=50, max_digits=6, decimal_places=2)
    technique: Literal["nappage", "papule", "point", "linear"] = "nappage"
    vial: Id | None = Field(
        None, description="The opened vial drawn from; default the lot's open vial, or a new one."
    )


class SessionIn(Schema):
    performed_at: When
    injections: list[InjectionIn] = Field(min_length=1, max_length=100)
    numbing_cream: bool = False
    stimulants_avoided: bool = Field(
        description="Pre-check: the patient has had no caffeine or stimulants today."
    )
    practitioner: Id | None = Field(None, description="User id; default the caller.")
    burning_minutes: int | None = Field(None, ge=0, le=1440)
    discomfort_minutes: int | None = Field(None, ge=0, le=1440)
    notes: str = Field("", max_length=limits.NOTES)
    override_codes: list[Key] = Field(
        default_factory=list,
        max_length=50,
        description="Refusal codes to override, where the protocol allows.",
    )
    override_reason: str = Field("", max_length=limits.REASON)


class SideEffectIn(Schema):
    kind: str = Field(max_length=40, description='A side-effect key of the protocol, or "other".')
    onset_at: When
    resolved_at: When | None = None
    grade: int = Field(ge=1, le=5, description="CTCAE injection site reaction grade.")
    description: str = Field("", max_length=limits.NOTES)


class ResolveIn(Schema):
    resolved_at: When


class CloseIn(Schema):
    outcome: str = Field(max_length=limits.NOTES)
    resolution: str = Field(
        "",
        max_length=20,
        description="How it ended: resolved, improving, referred, no_problem or unreachable.",
    )


class ProtocolEditIn(Schema):
    document: dict[str, Any] = Field(
        description="The whole protocol, in the protocol file's shape."
    )
    change_note: str = Field("", max_length=300)


class ProductComponentIn(Schema):
    ingredient: str = Field(max_length=limits.KEY, description="Ingredient key.")
    concentration: Decimal = Field(ge=0, max_digits=10, decimal_places=4)
    unit: str = Field("mg/mL", min_length=1, max_length=20)


class ProductIn(Schema):
    name: str = Field(min_length=1, max_length=200)
    supplier: str = Field(min_length=1, max_length=200)
    vial: Literal["single", "multi"]
    components: list[ProductComponentIn] = Field(min_length=1, max_length=50)
    indications: list[Key] = Field(
        default_factory=list,
        max_length=20,
        description="Indication keys the product is for, e.g. cellulite; empty: any.",
    )


class LotIn(Schema):
    lot_number: str = Field(min_length=1, max_length=60)
    expires_on: Day
    received_on: Day | None = None


class StockIn(Schema):
    """A change to a lot's stock: vials received, mL wasted, or a count of unopened vials."""

    kind: Literal["received", "waste", "count"]
    vials: int | None = Field(
        None, ge=0, le=100_000, description="received: vials; count: vials counted."
    )
    ml: Decimal = Field(
        Decimal("0"), ge=0, le=100_000, max_digits=9, decimal_places=2, description="waste: mL."
    )
    reason: str = Field("", max_length=limits.REASON)
    vial_cost: Decimal | None = Field(
        None,
        ge=0,
        le=1_000_000,
        max_digits=14,
        decimal_places=3,
        description="received: what one vial cost, in the clinic's currency (managers' value).",
    )


class VialCloseIn(Schema):
    reason: Literal["used_up", "beyond_use", "contaminated", "other"]
    note: str = Field("", max_length=limits.REASON)


class RecallIn(Schema):
    reason: str = Field(min_length=1, max_length=limits.REASON)

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v


class PatientOut(Schema):
    id: int
    first_name: str
    last_name: str
    date_of_birth: dt.date
    sex: str
    email: str
    phone: str
    address: str
    sms_consent: bool
    sms_consent_at: dt.datetime | None
    allergies: list[dict[str, Any]]
    latest_screening: dict[str, Any] | None
    consents: list[dict[str, Any]]
    courses: list[dict[str, Any]]


class CourseOut(Schema):
    id: int
    patient: int
    protocol: str
    protocol_version: int
    indication: str
    areas: list[str]
    cadence_days: int
    status: str
    sessions_done: int
    sessions_planned: int
    next_session_window: dict[str, str] | None
    maintenance_window: dict[str, str] | None
    allergy_tests: list[dict[str, Any]]
    sessions: list[dict[str, Any]]
    plan: dict[str, Any]
    products: list[dict[str, Any]]


class RefusalOut(Schema):
    code: str
    message: str
    overridable: bool


class RefusedOut(Schema):
    """A refused session (409, application/problem+json): every reason, each with its code."""

    type: str
    title: str
    status: int
    detail: str
    reasons: list[RefusalOut]


class CheckOut(Schema):
    may_proceed: bool
    reasons: list[RefusalOut]


class SessionOut(Schema):
    id: int
    course: int
    number: int
    kind: str
    performed_at: dt.datetime
    practitioner: int
    areas: list[str]
    injections: list[dict[str, Any]]
    override_codes: list[str]
    aftercare: list[dict[str, Any]]
    warnings: list[str]


class SideEffectOut(Schema):
    id: int
    session: int
    kind: str
    grade: int
    onset_at: dt.datetime
    resolved_at: dt.datetime | None
    expected_until: dt.datetime | None
    status: Literal["expected", "beyond_expected", "urgent"]
    follow_up: int | None


# Scheduling.


AppointmentKind = Literal["allergy_test", "test_reading", "session", "review", "maintenance"]


class AppointmentIn(Schema):
    patient: Id
    kind: AppointmentKind
    practitioner: Id
    starts_at: When
    ends_at: When | None = Field(
        None, description="Default: the course protocol's length for the kind and areas."
    )
    course: Id | None = None
    room: Id | None = None
    notes: str = Field("", max_length=limits.NOTES)


class AppointmentOut(Schema):
    id: int
    patient: int
    patient_name: str
    course: int | None
    kind: str
    practitioner: int
    practitioner_name: str
    room: int | None
    room_name: str | None
    starts_at: dt.datetime
    ends_at: dt.datetime
    status: str
    cancel_reason: str
    notes: str


class CancelIn(Schema):
    reason: str = Field("", max_length=300)


class MoveIn(Schema):
    starts_at: When
    practitioner: Id | None = Field(None, description="Default: the same practitioner.")
    accept_break: bool = Field(
        False,
        description="Move even when a later visit cannot keep its cadence window; the break "
        "is audited and flagged on the Today page.",
    )
    dry_run: bool = Field(False, description="Only show what would change.")


class ChangeOut(Schema):
    appointment: int
    kind: str
    from_starts_at: dt.datetime
    starts_at: dt.datetime
    ends_at: dt.datetime
    practitioner: int


class MoveOut(Schema):
    applied: bool
    changes: list[ChangeOut]
    problems: list[str]


class PreferencesIn(Schema):
    weekdays: list[Annotated[int, Field(ge=0, le=6)]] = Field(
        default_factory=list,
        max_length=7,
        description="Preferred days, Monday 0 to Sunday 6; empty: any.",
    )
    earliest_time: ClockTime | None = None
    latest_time: ClockTime | None = None


class BookCourseIn(Schema):
    practitioner: Id | None = Field(
        None, description="Default: who gave the course's last session, else who planned it."
    )
    not_before: When | None = None
    preferences: PreferencesIn = Field(default_factory=PreferencesIn)
    dry_run: bool = Field(False, description="Only propose the series; book nothing.")
    accept_changes: bool = Field(
        False,
        description="Book even where a visit cannot keep the chosen practitioner or the "
        "preferred days and times (the proposal's `changes`). Without it such a booking is "
        "refused with each change.",
    )


class ProposedVisitOut(Schema):
    kind: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    practitioner: int
    practitioner_name: str
    room: int | None


class ProposalOut(Schema):
    booked: bool
    visits: list[ProposedVisitOut]
    problems: list[str]
    changes: list[str] = Field(
        default_factory=list,
        description="Each visit that cannot keep the chosen practitioner or the preferred "
        "days and times, and why.",
    )
    appointments: list[AppointmentOut] = Field(default_factory=list)


class FreeSlotOut(Schema):
    practitioner: int
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None


class CadenceFlagOut(Schema):
    course: int
    patient: int
    patient_name: str
    message: str
