"""The calendar: rooms, practitioners' working hours, the clinic's opening hours and holidays,
and appointments.

Two active appointments never overlap for one practitioner, one patient or one room. On
PostgreSQL the database refuses it (an exclusion constraint); on SQLite `Appointment.save()`
re-checks inside a transaction that SQLite serialises (see `save()` and actions.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateTimeRangeField, RangeBoundary, RangeOperators
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.models import F, Q
from django.utils import timezone

from mesoclinic.accounts.models import Clinic
from mesoclinic.courses.models import Course
from mesoclinic.patients.models import Patient


class Weekday(models.IntegerChoices):
    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"


class PostgresExclusionConstraint(ExclusionConstraint):
    """An ExclusionConstraint that exists on PostgreSQL and is nothing on any other database.

    Django's ExclusionConstraint writes `EXCLUDE USING gist (...)` whatever the backend, and the
    SQLite schema editor puts every constraint of a model into its CREATE TABLE, both when the
    model is created and each time a later migration rebuilds the table. So a plain
    ExclusionConstraint would break `migrate` on SQLite, now or at the next AlterField. Keeping
    the constraint in `Meta.constraints` (where the model's invariants are named) and making it
    emit no SQL and skip validation off PostgreSQL keeps one ordinary, autodetected migration
    that applies on both databases; `BtreeGistExtension` is already a no-op off PostgreSQL.
    Returning None is how Django's own unsupported constraints say "nothing to do": the schema
    editor drops falsy statements from CREATE TABLE and skips them in add/remove_constraint.
    """

    @staticmethod
    def _on_postgres(schema_editor: Any) -> bool:
        return bool(schema_editor.connection.vendor == "postgresql")

    def constraint_sql(self, model: Any, schema_editor: Any) -> Any:
        return (
            super().constraint_sql(model, schema_editor)
            if self._on_postgres(schema_editor)
            else None
        )

    def create_sql(self, model: Any, schema_editor: Any) -> Any:
        return (
            super().create_sql(model, schema_editor) if self._on_postgres(schema_editor) else None
        )

    def remove_sql(self, model: Any, schema_editor: Any) -> Any:
        return (
            super().remove_sql(model, schema_editor) if self._on_postgres(schema_editor) else None
        )

    def validate(
        self, model: Any, instance: Any, exclude: Any = None, using: str = DEFAULT_DB_ALIAS
    ) -> None:
        # The validation query uses PostgreSQL's range operators.
        if connections[using].vendor == "postgresql":
            super().validate(model, instance, exclude=exclude, using=using)


class TsTzRange(models.Func):
    """`tstzrange(starts_at, ends_at, '[)')`: half-open, so back-to-back visits do not clash."""

    function = "TSTZRANGE"
    output_field = DateTimeRangeField()


class Room(models.Model):
    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="rooms")
    name = models.CharField(max_length=100)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "name"], name="one_room_name_per_clinic"),
        ]

    def __str__(self) -> str:
        return self.name


class WorkingHours(models.Model):
    """One block of a practitioner's weekly template. A day may have several blocks (a morning
    and an afternoon)."""

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="working_hours")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="working_hours")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    starts = models.TimeField()
    ends = models.TimeField()

    class Meta:
        ordering = ["user", "weekday", "starts"]
        verbose_name_plural = "working hours"
        constraints = [
            models.CheckConstraint(
                condition=Q(ends__gt=F("starts")), name="working_hours_end_after_start"
            ),
            models.CheckConstraint(condition=Q(weekday__lte=6), name="working_hours_weekday"),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.get_weekday_display()} {self.starts:%H:%M}–{self.ends:%H:%M}"


class WorkingException(models.Model):
    """A change to the template on one date: time off (the whole day when no times are given)
    or extra hours."""

    class Kind(models.TextChoices):
        TIME_OFF = "time_off", "Time off"
        EXTRA_HOURS = "extra_hours", "Extra hours"

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="working_exceptions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.CASCADE, related_name="working_exceptions"
    )
    date = models.DateField()
    kind = models.CharField(max_length=12, choices=Kind.choices)
    starts = models.TimeField(null=True, blank=True)
    ends = models.TimeField(null=True, blank=True)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["date", "starts"]
        constraints = [
            # Both times or neither; extra hours always say when.
            models.CheckConstraint(
                condition=(
                    Q(starts__isnull=True, ends__isnull=True, kind="time_off")
                    | Q(starts__isnull=False, ends__isnull=False, ends__gt=F("starts"))
                ),
                name="working_exception_times",
            ),
        ]

    def __str__(self) -> str:
        when = f" {self.starts:%H:%M}–{self.ends:%H:%M}" if self.starts and self.ends else ""
        return f"{self.user} {self.get_kind_display()} {self.date}{when}"

    @property
    def whole_day(self) -> bool:
        return self.starts is None


class OpeningHours(models.Model):
    """When the clinic is open on a weekday; several rows make a day with a break."""

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="opening_hours")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    opens = models.TimeField()
    closes = models.TimeField()

    class Meta:
        ordering = ["weekday", "opens"]
        verbose_name_plural = "opening hours"
        constraints = [
            models.CheckConstraint(
                condition=Q(closes__gt=F("opens")), name="opening_hours_close_after_open"
            ),
            models.CheckConstraint(condition=Q(weekday__lte=6), name="opening_hours_weekday"),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens:%H:%M}–{self.closes:%H:%M}"


class Holiday(models.Model):
    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="holidays")
    date = models.DateField()
    name = models.CharField(max_length=120)

    class Meta:
        ordering = ["date"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "date"], name="one_holiday_per_clinic_day"),
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.name}"


class VisitType(models.Model):
    """How long the clinic books a visit of one kind when no protocol says: a consultation
    always, the other kinds when they are booked without a course. A course's visits keep the
    lengths of its protocol."""

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="visit_types")
    kind = models.CharField(max_length=14)
    minutes = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["kind"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "kind"], name="one_visit_type_per_kind"),
            models.CheckConstraint(
                condition=Q(minutes__gte=5, minutes__lte=480), name="visit_type_minutes"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.minutes} min"


class AppointmentOverlap(Exception):
    """Raised by `Appointment.save()` when an active appointment would overlap another for the
    same practitioner, patient or room. actions.py turns it into a BookingRefused naming the
    conflict."""

    def __init__(self, appointment: Appointment, conflicts: list[Appointment]):
        self.appointment = appointment
        self.conflicts = conflicts
        super().__init__(f"{appointment} overlaps {', '.join(map(str, conflicts))}")


class Appointment(models.Model):
    class Kind(models.TextChoices):
        ALLERGY_TEST = "allergy_test", "Allergy test visit"
        TEST_READING = "test_reading", "Test reading"
        SESSION = "session", "Session"
        REVIEW = "review", "Review"
        MAINTENANCE = "maintenance", "Maintenance session"
        CONSULTATION = "consultation", "Consultation"

    class Status(models.TextChoices):
        BOOKED = "booked", "Booked"
        CONFIRMED = "confirmed", "Confirmed"
        ARRIVED = "arrived", "Arrived"
        DONE = "done", "Done"
        NO_SHOW = "no_show", "No-show"
        CANCELLED = "cancelled", "Cancelled"

    # A cancelled or missed appointment frees its slot; every other status holds it.
    INACTIVE = (Status.CANCELLED, Status.NO_SHOW)

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="appointments")
    patient = models.ForeignKey(Patient, models.CASCADE, related_name="appointments")
    course = models.ForeignKey(
        Course, models.SET_NULL, null=True, blank=True, related_name="appointments"
    )
    kind = models.CharField(max_length=14, choices=Kind.choices)
    practitioner = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, related_name="appointments"
    )
    room = models.ForeignKey(
        Room, models.PROTECT, null=True, blank=True, related_name="appointments"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.BOOKED)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    cancel_reason = models.CharField(max_length=300, blank=True)
    no_show_at = models.DateTimeField(null=True, blank=True)
    no_show_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Check-in: the front desk marks the patient arrived; charting the visit's session marks
    # it done and links the session here (scheduling.actions.link_session).
    arrived_at = models.DateTimeField(null=True, blank=True)
    arrived_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    session = models.OneToOneField(
        "courses.Session",
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="appointment",
    )
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["starts_at"]
        indexes = [
            models.Index(fields=["clinic", "starts_at"], name="appointment_clinic_starts"),
            models.Index(fields=["practitioner", "starts_at"], name="appointment_pract_starts"),
            models.Index(fields=["patient", "starts_at"], name="appointment_patient_starts"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="appointment_ends_after_start"
            ),
            PostgresExclusionConstraint(
                name="appointment_no_practitioner_overlap",
                expressions=[
                    (TsTzRange("starts_at", "ends_at", RangeBoundary()), RangeOperators.OVERLAPS),
                    ("practitioner", RangeOperators.EQUAL),
                ],
                condition=~Q(status__in=["cancelled", "no_show"]),
                violation_error_message="The practitioner already has an appointment then.",
            ),
            PostgresExclusionConstraint(
                name="appointment_no_room_overlap",
                expressions=[
                    (TsTzRange("starts_at", "ends_at", RangeBoundary()), RangeOperators.OVERLAPS),
                    ("room", RangeOperators.EQUAL),
                ],
                condition=~Q(status__in=["cancelled", "no_show"]),
                violation_error_message="The room is already taken then.",
            ),
            # A patient cannot be in two places at once: without this, two requests booking
            # the same patient with two practitioners both pass the booking path's check (each
            # reads the calendar before the other's row is committed) and both succeed.
            PostgresExclusionConstraint(
                name="appointment_no_patient_overlap",
                expressions=[
                    (TsTzRange("starts_at", "ends_at", RangeBoundary()), RangeOperators.OVERLAPS),
                    ("patient", RangeOperators.EQUAL),
                ],
                condition=~Q(status__in=["cancelled", "no_show"]),
                violation_error_message="The patient already has an appointment then.",
            ),
        ]

    def __str__(self) -> str:
        when = f"{self.starts_at:%Y-%m-%d %H:%M}"
        return f"{self.get_kind_display()} {when} ({self.get_status_display()})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Every save path re-checks for an overlap inside one transaction. On SQLite the
        transaction begins IMMEDIATE (settings.py), which takes the write lock before the check,
        so two writers cannot both pass it; on PostgreSQL the exclusion constraints decide and
        the check only gives a readable error first. (bulk_create and update() skip this.)"""
        with transaction.atomic():
            if self.active:
                conflicts = list(self.overlapping()[:5])
                if conflicts:
                    raise AppointmentOverlap(self, conflicts)
            super().save(*args, **kwargs)

    @property
    def active(self) -> bool:
        return self.status not in self.INACTIVE

    @property
    def duration(self) -> dt.timedelta:
        return self.ends_at - self.starts_at

    def overlapping(self) -> models.QuerySet[Appointment]:
        """Active appointments of the same practitioner, patient or room that overlap this
        one."""
        same = Q(practitioner_id=self.practitioner_id) | Q(patient_id=self.patient_id)
        if self.room_id is not None:
            same |= Q(room_id=self.room_id)
        qs = Appointment.objects.filter(
            same, starts_at__lt=self.ends_at, ends_at__gt=self.starts_at
        ).exclude(status__in=self.INACTIVE)
        if self.pk is not None:
            qs = qs.exclude(pk=self.pk)
        return qs.select_related("practitioner", "room")


class CalendarFeed(models.Model):
    """A private iCalendar address for one practitioner's or one patient's visits.

    A calendar app subscribes without signing in, so the address itself is the secret: a
    random token, shown once to whoever made it and stored only as its SHA-256 (like an API
    token), so a copy of the database does not hand out working addresses. It is revoked by
    setting `revoked_at` (a new feed gets a new token), and a practitioner's feed dies with
    their membership or their account. A practitioner's feed names patients by initials only,
    because a phone's calendar is not a place for health data."""

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="calendar_feeds")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.CASCADE,
        null=True,
        blank=True,
        related_name="calendar_feeds",
    )
    patient = models.ForeignKey(
        Patient, models.CASCADE, null=True, blank=True, related_name="calendar_feeds"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_fetched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(user__isnull=False, patient__isnull=True)
                    | Q(user__isnull=True, patient__isnull=False)
                ),
                name="calendar_feed_for_one_person",
            ),
        ]

    def __str__(self) -> str:
        whose = self.user if self.user_id else self.patient
        return f"Calendar feed of {whose}"

    @property
    def active(self) -> bool:
        return self.revoked_at is None
