"""Courses, allergy tests, sessions, side effects and the follow-ups they open."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from mesoclinic.accounts.models import Clinic, PractitionerLicence
from mesoclinic.courses import logic, rules
from mesoclinic.formulary import stock
from mesoclinic.formulary.models import TEST_DOSE_ML, Lot, Product, Vial
from mesoclinic.patients import consent as consent_text
from mesoclinic.patients.models import Patient, Screening, sha256
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.protocols.schema import Protocol
from mesoclinic.protocols.vocab import Area, Indication


class SessionRefused(ValidationError):
    """Raised by every save path when a gate refuses the session (or the allergy test's
    injections, `subject="allergy test"`). `refusals` lists every reason."""

    def __init__(self, refusals: list[rules.Refusal], subject: str = "session"):
        self.refusals = refusals
        self.subject = subject
        super().__init__([f"{r.code}: {r.message}" for r in refusals], code="session_refused")


def _refuse_changes(obj: models.Model, fields: tuple[str, ...]) -> None:
    """A charted injection is a clinical record: what, where, when and by whom never change.
    A correction goes in the notes (and a wrong record is reported, not rewritten)."""
    old = type(obj)._default_manager.filter(pk=obj.pk).values(*fields).first()
    if old is not None and any(old[f] != getattr(obj, f) for f in fields):
        changed = ", ".join(f.removesuffix("_id") for f in fields if old[f] != getattr(obj, f))
        raise ValidationError(f"A charted record cannot be changed ({changed}).")


class Course(models.Model):
    class Status(models.TextChoices):
        PLANNED = "planned", "Planned"
        ACTIVE = "active", "Active"
        COMPLETED = "completed", "Completed"
        STOPPED = "stopped", "Stopped"
        MAINTENANCE = "maintenance", "Maintenance"

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="courses")
    patient = models.ForeignKey(Patient, models.CASCADE, related_name="courses")
    protocol = models.ForeignKey(
        ClinicProtocol,
        models.PROTECT,
        related_name="courses",
        help_text="The exact protocol version the course was planned with.",
    )
    indication = models.CharField(max_length=30, choices=Indication.choices)
    areas = models.JSONField(help_text='Area keys, e.g. ["thighs", "buttocks"].')
    cadence_days = models.PositiveSmallIntegerField()
    planned_sessions = models.PositiveSmallIntegerField()
    first_session_on = models.DateField(help_text="The planned date of session 1.")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PLANNED)
    stop_reason = models.TextField(blank=True)
    products = models.ManyToManyField(
        Product,
        blank=True,
        related_name="courses",
        help_text="The products planned for the course; a lot of any other is refused.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["clinic", "status"], name="course_clinic_status")]

    def __str__(self) -> str:
        return f"{self.patient} · {self.protocol.name} ({self.get_status_display()})"

    @property
    def spec(self) -> Protocol:
        return self.protocol.spec

    def clean(self) -> None:
        problems: dict[str, str] = {}
        spec = self.spec
        if self.patient.clinic_id != self.clinic_id or self.protocol.clinic_id != self.clinic_id:
            problems["patient"] = "The patient, the protocol and the course must share a clinic."
        if self.indication not in spec.indications.v:
            allowed = ", ".join(spec.indications.v)
            problems["indication"] = (
                f"{self.indication!r} is not treated by this protocol ({allowed})."
            )
        areas = self.areas if isinstance(self.areas, list) else []
        if not areas:
            problems["areas"] = "Choose at least one area."
        else:
            unknown = [a for a in areas if a not in spec.areas.v]
            if unknown:
                problems["areas"] = (
                    f"{', '.join(map(str, unknown))} not in this protocol's areas "
                    f"({', '.join(spec.areas.v)})."
                )
        if self.cadence_days not in spec.cadence.days.v:
            problems["cadence_days"] = (
                f"must be one of {', '.join(map(str, spec.cadence.days.v))} days."
            )
        low, high = spec.sessions.v.min, spec.sessions.v.max
        if not low <= self.planned_sessions <= high:
            problems["planned_sessions"] = f"must be between {low} and {high} for this protocol."
        if problems:
            raise ValidationError(problems)

    def plan(self) -> dict[str, object]:
        return logic.plan(
            self.spec,
            planned_sessions=self.planned_sessions,
            cadence_days=self.cadence_days,
            first_session_on=self.first_session_on,
            currency=self.clinic.currency,
        )

    def progress(self, sessions: list[Session] | None = None) -> dict[str, object]:
        """Sessions done and planned, the next session's window, and after completion the
        maintenance window. `sessions` are all the course's sessions, where the caller has
        read them."""
        spec = self.spec
        every = sorted(
            self.sessions.all() if sessions is None else sessions, key=lambda s: s.performed_at
        )
        sessions = [s for s in every if s.kind == Session.Kind.COURSE]
        done = len(sessions)
        next_window: dict[str, str] | None = None
        maintenance: dict[str, str] | None = None
        tz = self.clinic.tz
        if self.status in (self.Status.COMPLETED, self.Status.MAINTENANCE):
            last = every[-1]
            maintenance = logic.maintenance_window(last.performed_at.astimezone(tz).date(), spec)
        elif self.status in (self.Status.PLANNED, self.Status.ACTIVE):
            if sessions:
                next_window = logic.next_window(
                    sessions[-1].performed_at,
                    self.cadence_days,
                    spec.cadence.tolerance_days.v,
                    tz,
                ).as_dict()
            else:
                next_window = self._first_session_window(spec)
        return {
            "sessions_done": done,
            "sessions_planned": self.planned_sessions,
            "next_session_window": next_window,
            "maintenance_window": maintenance,
        }

    def _first_session_window(self, spec: Protocol) -> dict[str, str]:
        """Before session 1: from the time the allergy test can be read (or the planned
        date, if later) to the planned date plus the tolerance."""
        tz = self.clinic.tz
        planned = dt.datetime.combine(self.first_session_on, dt.time(0, 0), tzinfo=tz)
        earliest = planned
        test = self.allergy_tests.order_by("-given_at").first()
        if test is not None:
            earliest = max(
                planned, test.given_at + dt.timedelta(hours=spec.allergy_test.wait_hours.v)
            )
        latest = planned + dt.timedelta(days=spec.cadence.tolerance_days.v + 1)
        return {
            "earliest": earliest.astimezone(tz).isoformat(),
            "due": planned.isoformat(),
            "latest": max(latest, earliest).astimezone(tz).isoformat(),
        }


class AllergyTest(models.Model):
    """The test injections given before the course (seed 004: two injections, 24 h ahead)."""

    course = models.ForeignKey(Course, models.CASCADE, related_name="allergy_tests")
    given_at = models.DateTimeField()
    given_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="+")
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["given_at"]

    def __str__(self) -> str:
        return f"Allergy test {self.given_at:%Y-%m-%d %H:%M} for {self.course.patient}"

    def readable_from(self) -> dt.datetime:
        return self.given_at + dt.timedelta(hours=self.course.spec.allergy_test.wait_hours.v)

    @property
    def latest_reading(self) -> AllergyReading | None:
        return self.readings.order_by("-read_at").first()


class AllergyTestInjection(models.Model):
    test = models.ForeignKey(AllergyTest, models.CASCADE, related_name="injections")
    lot = models.ForeignKey(Lot, models.PROTECT, related_name="allergy_test_injections")
    # The vial it was drawn from and how much (formulary.stock); empty for a test charted
    # before stock was kept.
    vial = models.ForeignKey(
        Vial, models.PROTECT, null=True, blank=True, related_name="allergy_test_injections"
    )
    volume_ml = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        default=TEST_DOSE_ML,
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("5"))],
    )
    site = models.CharField(max_length=100, help_text='e.g. "left inner forearm"')
    given_at = models.DateTimeField()
    given_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="+")

    def __str__(self) -> str:
        return f"{self.lot} at {self.site}"


class AllergyReading(models.Model):
    class Result(models.TextChoices):
        NONE = "none", "No reaction"
        LOCAL = "local", "Local reaction"
        SYSTEMIC = "systemic", "Systemic reaction"

    test = models.ForeignKey(AllergyTest, models.CASCADE, related_name="readings")
    read_at = models.DateTimeField()
    read_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="+")
    result = models.CharField(max_length=10, choices=Result.choices)
    notes = models.TextField(blank=True)
    charted_result = models.CharField(
        max_length=10,
        choices=Result.choices,
        blank=True,
        help_text="The result as first charted, kept once it is amended (courses.Amendment).",
    )

    class Meta:
        ordering = ["read_at"]

    def __str__(self) -> str:
        return f"Read {self.read_at:%Y-%m-%d %H:%M}: {self.get_result_display()}"


class Session(models.Model):
    class Kind(models.TextChoices):
        COURSE = "course", "Course session"
        MAINTENANCE = "maintenance", "Maintenance session"

    course = models.ForeignKey(Course, models.CASCADE, related_name="sessions")
    number = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.COURSE)
    performed_at = models.DateTimeField()
    practitioner = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="+")
    numbing_cream = models.BooleanField(default=False)
    stimulants_avoided = models.BooleanField(
        help_text="Pre-check: the patient had no caffeine or stimulants today."
    )
    burning_minutes = models.PositiveSmallIntegerField(null=True, blank=True)
    discomfort_minutes = models.PositiveSmallIntegerField(null=True, blank=True)
    notes = models.TextField(blank=True)
    override_codes = models.JSONField(default=list, blank=True)
    override_reason = models.TextField(blank=True)
    overridden_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["performed_at"]
        constraints = [
            models.UniqueConstraint(fields=["course", "number"], name="session_number_once"),
            models.CheckConstraint(
                condition=models.Q(override_codes=[])
                | (~models.Q(override_reason="") & models.Q(overridden_by__isnull=False)),
                name="override_names_who_and_why",
            ),
        ]

    def __str__(self) -> str:
        return f"Session {self.number} of {self.course}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # The model save path goes through the gates too, so no caller can skip them.
        if self._state.adding:
            found = rules.refusals(
                gather_facts(self.course, self.performed_at, self.practitioner, lots=[])
            )
            refused = rules.blocking(found, self.override_codes)
            if refused:
                raise SessionRefused(refused)
        else:
            _refuse_changes(
                self, ("course_id", "performed_at", "practitioner_id", "override_codes")
            )
        super().save(*args, **kwargs)

    @property
    def areas(self) -> list[str]:
        return sorted({i.area for i in self.injections.all()})

    @property
    def current_notes(self) -> str:
        """The notes as amended last (courses.Amendment), or as charted. Prefetch
        "amendments" to read them for many sessions in one query."""
        notes = [a.amended for a in self.amendments.all() if a.field == "notes"]
        return notes[-1] if notes else self.notes

    def aftercare(self) -> list[dict[str, object]]:
        return logic.aftercare(
            self.course.spec, self.performed_at, set(self.areas), self.course.clinic.tz
        )


class SessionInjection(models.Model):
    class Technique(models.TextChoices):
        NAPPAGE = "nappage", "Nappage"
        PAPULE = "papule", "Papule (point by point)"
        POINT = "point", "Deep point"
        LINEAR = "linear", "Linear / retrograde"

    session = models.ForeignKey(Session, models.CASCADE, related_name="injections")
    area = models.CharField(max_length=20, choices=Area.choices)
    lot = models.ForeignKey(Lot, models.PROTECT, related_name="session_injections")
    vial = models.ForeignKey(
        Vial, models.PROTECT, null=True, blank=True, related_name="session_injections"
    )
    volume_ml = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("50"))],
    )
    technique = models.CharField(
        max_length=10, choices=Technique.choices, default=Technique.NAPPAGE
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(volume_ml__gt=0), name="injection_volume_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_area_display()}: {self.volume_ml} mL of {self.lot}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self._state.adding:
            session = self.session
            # The vial it is drawn from, or the one it would be: the vial gates hold here too.
            chosen = {self.lot_id: self.vial} if self.vial is not None else None
            plan = stock.vial_plan([self.lot], session.performed_at, chosen)
            facts = gather_facts(
                session.course,
                session.performed_at,
                session.practitioner,
                lots=[self.lot],
                exclude_session_id=session.pk,
            )
            found = rules.refusals(
                replace(facts, vials=stock.vial_facts(plan, session.course.patient_id))
            )
            refused = rules.blocking(found, session.override_codes)
            if refused:
                raise SessionRefused(refused)
        else:
            _refuse_changes(self, ("session_id", "area", "lot_id", "volume_ml"))
        super().save(*args, **kwargs)


class SideEffect(models.Model):
    OTHER = "other"

    session = models.ForeignKey(Session, models.CASCADE, related_name="side_effects")
    kind = models.CharField(max_length=40, help_text='A key from the protocol, or "other".')
    description = models.TextField(blank=True)
    onset_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    grade = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(5)],
        help_text="CTCAE injection site reaction grade, 1 (mild) to 5 (death).",
    )
    # Derived from the protocol by logic.side_effect_status; kept so that lists can be
    # filtered and sorted in the database. refresh_status() is the only writer.
    status = models.CharField(max_length=20, default=logic.EXPECTED)
    expected_until = models.DateTimeField(null=True, blank=True)
    reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
    reported_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-onset_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(grade__gte=1) & models.Q(grade__lte=5), name="ctcae_grade_1_5"
            ),
            models.CheckConstraint(
                condition=models.Q(resolved_at__isnull=True)
                | models.Q(resolved_at__gte=models.F("onset_at")),
                name="resolved_after_onset",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} (grade {self.grade}) after {self.session}"

    def refresh_status(self, now: dt.datetime | None = None) -> bool:
        """Recompute status and expected_until; return True if the status changed."""
        spec = self.session.course.spec
        status, until = logic.side_effect_status(
            spec.side_effect(self.kind),
            self.grade,
            self.onset_at,
            self.resolved_at,
            now or timezone.now(),
            spec.urgent_from_grade.v,
        )
        changed = status != self.status
        self.status, self.expected_until = status, until
        return changed


class FollowUp(models.Model):
    """A task for the clinic about one session: a side effect that is beyond expected or
    urgent, or a patient's answer to an infection-watch questionnaire that reports a warning
    sign (safety.WatchPrompt). `side_effect` is empty for the latter."""

    class Priority(models.TextChoices):
        URGENT = "urgent", "Urgent"
        ROUTINE = "routine", "Routine"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Done"

    class Resolution(models.TextChoices):
        # How a follow-up ended, whatever opened it; the outcome text says the rest.
        RESOLVED = "resolved", "The problem has resolved"
        IMPROVING = "improving", "Treated, and improving"
        REFERRED = "referred", "Referred to a doctor or a hospital"
        NO_PROBLEM = "no_problem", "Checked: no problem found"
        UNREACHABLE = "unreachable", "The patient could not be reached"

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="follow_ups")
    session = models.ForeignKey(Session, models.CASCADE, related_name="follow_ups")
    side_effect = models.ForeignKey(
        SideEffect, models.CASCADE, null=True, blank=True, related_name="follow_ups"
    )
    priority = models.CharField(max_length=10, choices=Priority.choices)
    reason = models.CharField(max_length=300)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    outcome = models.TextField(blank=True)
    resolution = models.CharField(max_length=12, choices=Resolution.choices, blank=True)

    class Meta:
        # "urgent" sorts after "routine", so descending priority puts urgent ones first.
        ordering = ["-priority", "opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["side_effect"],
                condition=models.Q(status="open"),
                name="one_open_follow_up_per_side_effect",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_priority_display()}: {self.reason}"


def lot_facts_of(lots: list[Lot]) -> list[rules.LotFacts]:
    return [
        rules.LotFacts(
            lot_id=lot.pk,
            label=str(lot),
            product_id=lot.product_id,
            expires_on=lot.expires_on,
            recalled=lot.recalled,
            recall_reason=lot.recall_reason,
            ingredients={
                c.ingredient_id: c.ingredient.name
                for c in lot.product.components.select_related("ingredient")
            },
        )
        for lot in lots
    ]


def patient_allergies(patient: Patient) -> dict[int, str]:
    """The ingredients the patient is allergic to (id -> name)."""
    return allergens(patient.allergies.select_related("ingredient"))


def allergens(allergies: Any) -> dict[int, str]:
    """The ingredients of these allergies (id -> name), each read with its ingredient."""
    return {
        a.ingredient.pk: a.ingredient.name
        # An allergy marked as entered in error no longer counts; one to a substance that is
        # no ingredient cannot be in a lot.
        for a in allergies
        if a.ingredient is not None and a.entered_in_error_at is None
    }


def gather_facts(
    course: Course,
    performed_at: dt.datetime,
    practitioner: Any,
    lots: list[Lot],
    exclude_session_id: int | None = None,
) -> rules.SessionFacts:
    """Read from the database everything rules.refusals needs for one session.

    A session is judged by the records that existed when it was performed: the latest
    screening, the consents signed, and the allergy tests given and read by `performed_at`.
    So a session charted after the fact cannot lean on a screening, consent or reading made
    later. Two things count whenever they were recorded: a reaction to an allergy test and
    an allergy the patient reported, because each means the injection is unsafe.
    """
    return gather_facts_many([course], performed_at, practitioner, lots, exclude_session_id)[
        course.pk
    ]


@dataclass
class GateRecords:
    """The rows the session gate reads of one patient and their courses, whenever they were
    recorded: gather_facts_many judges a moment from them, keeping only what existed then.
    A page that has read the same rows for itself (the chart) hands them over, so nothing is
    read twice; `read` reads them for everyone else."""

    screenings: list[Screening]
    # The patient's consents, each with products__components__ingredient prefetched.
    consents: list[Any]
    # By course id: allergy tests with their readings prefetched, sessions, and the times of
    # the course's measurements (any measurement by then is a baseline).
    tests_of: Mapping[int, list[AllergyTest]]
    sessions_of: Mapping[int, list[Session]]
    measured_of: Mapping[int, list[dt.datetime]]
    # The patient's allergies with their ingredient, and what may be an active problem (see
    # active_problems), each with its session: side effects, serious adverse events, the
    # follow-ups an infection-watch answer opened, and the urgent ones a side effect opened.
    allergies: list[Any]
    side_effects: list[SideEffect]
    adverse_events: list[Any]
    watch_follow_ups: list[FollowUp]
    # The urgent follow-ups a side effect opened, each with its side effect, its session and
    # the session's course (whose protocol names the side effect).
    effect_follow_ups: list[FollowUp]

    @staticmethod
    def consents_of(patient: Patient) -> list[Any]:
        """The patient's consents as the gate reads them (the chart shows the same rows)."""
        return list(
            patient.consents.select_related("template", "witnessed_by").prefetch_related(
                "products__components__ingredient"
            )
        )

    @staticmethod
    def allergies_of(patient: Patient) -> list[Any]:
        """Every allergy of the patient, entered in error or not, with its ingredient."""
        return list(patient.allergies.select_related("ingredient"))

    @classmethod
    def read(cls, patient: Patient, course_ids: list[int]) -> GateRecords:
        tests_of: dict[int, list[AllergyTest]] = {pk: [] for pk in course_ids}
        for t in AllergyTest.objects.filter(course_id__in=course_ids).prefetch_related("readings"):
            tests_of[t.course_id].append(t)
        sessions_of: dict[int, list[Session]] = {pk: [] for pk in course_ids}
        for s in Session.objects.filter(course_id__in=course_ids).only(
            "pk", "course_id", "performed_at"
        ):
            sessions_of[s.course_id].append(s)
        measured_of: dict[int, list[dt.datetime]] = {pk: [] for pk in course_ids}
        # The reverse relation keeps courses free of an import from outcomes, which depends
        # on courses.
        for pk, at in Course.objects.filter(
            pk__in=course_ids, measurements__isnull=False
        ).values_list("pk", "measurements__taken_at"):
            measured_of[pk].append(at)
        return cls(
            screenings=list(patient.screenings.all()),
            consents=cls.consents_of(patient),
            tests_of=tests_of,
            sessions_of=sessions_of,
            measured_of=measured_of,
            allergies=cls.allergies_of(patient),
            side_effects=list(
                SideEffect.objects.filter(
                    session__course__patient=patient, kind__in=INFECTION_SIDE_EFFECTS
                ).select_related("session")
            ),
            adverse_events=list(patient.adverse_events.select_related("session")),
            watch_follow_ups=list(
                FollowUp.objects.filter(
                    session__course__patient=patient,
                    side_effect__isnull=True,
                    watch_prompts__isnull=False,
                )
                .select_related("session")
                .distinct()
            ),
            effect_follow_ups=list(
                FollowUp.objects.filter(
                    session__course__patient=patient,
                    side_effect__isnull=False,
                    priority=FollowUp.Priority.URGENT,
                ).select_related("side_effect__session__course__protocol")
            ),
        )


def gather_facts_many(
    courses: list[Course],
    performed_at: dt.datetime,
    practitioner: Any,
    lots: list[Lot],
    exclude_session_id: int | None = None,
    practitioner_of: Mapping[int, Any] | None = None,
    records: GateRecords | None = None,
) -> dict[int, rules.SessionFacts]:
    """`gather_facts` for several courses of one patient at once, by course id, in the same
    number of queries as for one: what belongs to the patient (screening, consents,
    allergies) and to the practitioners is read once, and what belongs to a course (its
    allergy tests, its sessions, its baseline) in one query for all the courses. The chart
    asks this for every open course of the patient, each judged for the practitioner who
    will give its next session (`practitioner_of`, by course id; `practitioner` for a course
    it does not name), with the rows it has read already (`records`)."""
    if not courses:
        return {}
    patient = courses[0].patient
    clinic = courses[0].clinic
    if any(c.patient_id != patient.pk for c in courses):
        raise ValueError("gather_facts_many takes the courses of one patient.")
    ids = [c.pk for c in courses]
    if records is None:
        records = GateRecords.read(patient, ids)

    # Only what existed at `performed_at` counts (see gather_facts).
    screening = max(
        (s for s in records.screenings if s.screened_at <= performed_at),
        key=lambda s: (s.screened_at, s.pk),
        default=None,
    )
    hard_stops = screening.hard_stops if screening is not None else ()
    consents = [c for c in records.consents if c.signed_at <= performed_at]
    template = consent_text.current_template(clinic)

    tests_of: dict[int, list[rules.AllergyTestFacts]] = {}
    sessions_at: dict[int, list[dt.datetime]] = {}
    with_baseline: set[int] = set()
    for pk in ids:
        given = sorted(
            (t for t in records.tests_of.get(pk, []) if t.given_at <= performed_at),
            key=lambda t: t.given_at,
        )
        tests_of[pk] = [
            rules.AllergyTestFacts(
                given_at=t.given_at,
                readings=tuple(
                    rules.ReadingFacts(r.read_at, r.result)
                    for r in t.readings.all()
                    if r.read_at <= performed_at or r.result != AllergyReading.Result.NONE
                ),
            )
            for t in given
        ]
        sessions_at[pk] = sorted(
            s.performed_at for s in records.sessions_of.get(pk, []) if s.pk != exclude_session_id
        )
        if any(at <= performed_at for at in records.measured_of.get(pk, [])):
            with_baseline.add(pk)

    who_of = {c.pk: (practitioner_of or {}).get(c.pk, practitioner) for c in courses}
    licensed_until: dict[int, dt.date] = {}
    for user_id, expires in PractitionerLicence.objects.filter(
        clinic=clinic, user_id__in={w.pk for w in who_of.values() if w is not None}
    ).values_list("user_id", "expires_on"):
        licensed_until[user_id] = max(expires, licensed_until.get(user_id, expires))
    problems = tuple(active_problems(records, performed_at, clinic.tz))
    planned_of = planned_products_of(ids)
    allergies = allergens(records.allergies)
    lot_facts = tuple(lot_facts_of(lots))
    out = {}
    for course in courses:
        spec = course.spec
        current_products: set[int] = set()
        for c in consents:
            if c.template_id != template.pk:
                continue
            products = list(c.products.all())
            text = consent_text.render(template, products, course.indication, course.areas)
            if sha256(text) == c.text_sha256:
                current_products.update(p.pk for p in products)
        without = tuple(
            sorted({lot.product.name for lot in lots if lot.product_id not in current_products})
        )
        who = who_of[course.pk]
        out[course.pk] = rules.SessionFacts(
            performed_at=performed_at,
            tz=clinic.tz,
            screening_result=screening.result if screening else None,
            screening_hard_stops=hard_stops,
            has_consent=bool(consents),
            products_without_current_consent=without,
            allergy_tests=tuple(tests_of[course.pk]),
            allergy_wait_hours=spec.allergy_test.wait_hours.v,
            other_sessions_at=tuple(sessions_at[course.pk]),
            min_interval_days=course.cadence_days - spec.cadence.tolerance_days.v,
            lots=lot_facts,
            patient_allergies=allergies,
            practitioner_name=who.display_name if who is not None else "",
            licence_expires_on=licensed_until.get(who.pk) if who is not None else None,
            practitioner_known=who is not None,
            problems=problems,
            planned_products=planned_of.get(course.pk),
            overridable=frozenset(c.value for c in spec.overridable),
            baseline_required=clinic.baseline_required,
            has_baseline=course.pk in with_baseline,
        )
    return out


def planned_products_of(course_ids: list[int]) -> dict[int, dict[int, str]]:
    """The products planned for each course (product id -> name), by course id; a course that
    plans none is absent (its lots are not checked against a plan)."""
    out: dict[int, dict[int, str]] = {}
    rows = Course.products.through.objects.filter(course_id__in=course_ids).values_list(
        "course_id", "product_id", "product__name"
    )
    for course_id, product_id, name in rows:
        out.setdefault(course_id, {})[product_id] = name
    return out


INFECTION_SIDE_EFFECTS = ("infection", "mycobacterial_infection", "abscess")
ENDED_EVENT_OUTCOMES = ("resolved", "resolvedWithSequelae", "fatal")


def _day(moment: dt.datetime, tz: Any) -> str:
    local = moment.astimezone(tz)
    return f"{local:%a} {local.day} {local:%b %Y}"


def active_problems(records: GateRecords, at: dt.datetime, tz: Any) -> list[rules.ProblemFacts]:
    """The patient's problems active at `at`, as the records stood then: infections not yet
    resolved (a side effect of an infection kind, a serious adverse event of an infection kind,
    an urgent infection-watch answer whose follow-up is open), serious adverse events that
    had not ended, and urgent side effects of any other kind (necrosis, an ulcer, an allergic
    reaction, grade 3 or more) not resolved while their follow-up is open. An infection-watch
    answer counts from the session it is about: the patient reports an infection that began
    after it."""
    out: list[rules.ProblemFacts] = []
    for e in records.side_effects:
        if (
            e.kind in INFECTION_SIDE_EFFECTS
            and e.onset_at <= at
            and (e.resolved_at is None or e.resolved_at > at)
        ):
            out.append(
                rules.ProblemFacts(
                    True,
                    f"An infection (grade {e.grade}) after session {e.session.number}, "
                    f"since {_day(e.onset_at, tz)},",
                )
            )
    for ev in records.adverse_events:
        ended = ev.outcome in ENDED_EVENT_OUTCOMES and not (
            ev.outcome_at is not None and ev.outcome_at > at
        )
        if ev.onset_at <= at and not ended:
            out.append(
                rules.ProblemFacts(
                    ev.kind in INFECTION_SIDE_EFFECTS,
                    f"A serious adverse event ({ev.get_kind_display().lower()}, grade "
                    f"{ev.ctcae_grade}) after session {ev.session.number}, since "
                    f"{_day(ev.onset_at, tz)},",
                )
            )
    for f in records.watch_follow_ups:
        if (
            f.priority == FollowUp.Priority.URGENT
            # The infection began after the session the answer is about, whenever it was
            # reported.
            and f.session.performed_at < at
            and (f.status == FollowUp.Status.OPEN or (f.closed_at is not None and f.closed_at > at))
        ):
            out.append(
                rules.ProblemFacts(
                    True,
                    f"A possible infection reported by the patient ({f.reason[:1].lower()}"
                    f"{f.reason[1:]}), opened {_day(f.opened_at, tz)},",
                )
            )
    for f in records.effect_follow_ups:
        effect = f.side_effect
        assert effect is not None
        if (
            # An infection is judged above, and is never overridden.
            effect.kind not in INFECTION_SIDE_EFFECTS
            and effect.onset_at <= at
            and (effect.resolved_at is None or effect.resolved_at > at)
            # From its onset, however late it was reported, until the follow-up was closed.
            and (f.status == FollowUp.Status.OPEN or (f.closed_at is not None and f.closed_at > at))
        ):
            # Named as its course's protocol names it; one it does not list, by its description.
            listed = effect.session.course.spec.side_effect(effect.kind)
            if listed is not None:
                what = f"{listed.label} (grade {effect.grade})"
            else:
                said = f"{effect.description}, " if effect.description else ""
                what = f"A side effect ({said}grade {effect.grade})"
            out.append(
                rules.ProblemFacts(
                    False,
                    f"{what} after session {effect.session.number}, since "
                    f"{_day(effect.onset_at, tz)},",
                    side_effect=True,
                )
            )
    return out


class Amendment(models.Model):
    """A correction of a charted record: a session, a measurement or an allergy reading (one
    of the three). A session row never changes; a measurement's value and a reading's result
    hold the corrected value, so every reader (progress, analytics, the session gate) reads it
    with no added query, and the row keeps the value as charted (charted_value /
    charted_result). Each amendment keeps the field, its value before and after, why, who and
    when, and the pages show the amended value with the original beside it."""

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="amendments")
    session = models.ForeignKey(
        Session, models.CASCADE, null=True, blank=True, related_name="amendments"
    )
    measurement = models.ForeignKey(
        "outcomes.Measurement", models.CASCADE, null=True, blank=True, related_name="amendments"
    )
    allergy_reading = models.ForeignKey(
        AllergyReading, models.CASCADE, null=True, blank=True, related_name="amendments"
    )
    field = models.CharField(max_length=40)
    original = models.TextField(blank=True)
    amended = models.TextField(blank=True)
    reason = models.TextField()
    amended_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="+")
    amended_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["amended_at", "id"]
        constraints = [
            models.CheckConstraint(condition=~models.Q(reason=""), name="amendment_says_why"),
            models.CheckConstraint(
                condition=(
                    models.Q(session__isnull=False, measurement__isnull=True)
                    & models.Q(allergy_reading__isnull=True)
                )
                | (
                    models.Q(session__isnull=True, measurement__isnull=False)
                    & models.Q(allergy_reading__isnull=True)
                )
                | (
                    models.Q(session__isnull=True, measurement__isnull=True)
                    & models.Q(allergy_reading__isnull=False)
                ),
                name="amendment_has_one_record",
            ),
        ]

    def __str__(self) -> str:
        if self.measurement_id:
            return f"{self.field} of measurement {self.measurement_id} amended"
        if self.allergy_reading_id:
            return f"{self.field} of allergy reading {self.allergy_reading_id} amended"
        return f"{self.field} of session {self.session_id} amended"
