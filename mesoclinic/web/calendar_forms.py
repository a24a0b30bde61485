"""The calendar's forms: which days to show, moving a visit, cancelling one, and finding the
next free slot. Each only reads and checks what was typed; the actions in
mesoclinic.scheduling decide whether a booking or a move may be made."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils import timezone

from mesoclinic.accounts.models import User
from mesoclinic.courses.models import Course
from mesoclinic.lib import limits
from mesoclinic.patients.models import Patient
from mesoclinic.scheduling import actions, logic, visit_types
from mesoclinic.scheduling.models import Appointment

DAY, WEEK = "day", "week"

# A visit without a course has no protocol to give its length, so the front desk picks one.
LENGTHS = [(m, f"{m} minutes") for m in (15, 20, 30, 40, 45, 60, 75, 90, 120)]

# The courses that still take bookings: a maintenance visit follows a completed course.
BOOKABLE_COURSES = (
    Course.Status.PLANNED,
    Course.Status.ACTIVE,
    Course.Status.COMPLETED,
    Course.Status.MAINTENANCE,
)


# The days the calendar's forms accept: any course and its maintenance visit fit inside, and
# date arithmetic on them (a week on, a horizon of weeks) never leaves the calendar.
EARLIEST = dt.date(2000, 1, 1)
DAYS_AHEAD = 3 * 366


def check_day(day: dt.date) -> dt.date:
    latest = timezone.localdate() + dt.timedelta(days=DAYS_AHEAD)
    if not EARLIEST <= day <= latest:
        raise forms.ValidationError(
            f"Choose a date between {EARLIEST:%Y-%m-%d} and {latest:%Y-%m-%d}."
        )
    return day


def _kind_words(kind: str) -> str:
    """ "A session", "An allergy test visit": the visit's kind as a sentence's subject."""
    label = str(Appointment.Kind(kind).label)
    return ("An " if label[0].lower() in "aeiou" else "A ") + label.lower()


def practitioner_choices(practitioners: list[User]) -> list[tuple[str, str]]:
    return [(str(u.pk), u.display_name) for u in practitioners]


class PractitionerField(forms.ChoiceField):
    """One of the clinic's practitioners, chosen by id; cleans to the User."""

    def __init__(self, practitioners: list[User], **kwargs: Any) -> None:
        self.by_id = {str(u.pk): u for u in practitioners}
        super().__init__(choices=practitioner_choices(practitioners), **kwargs)

    def clean(self, value: Any) -> User | None:
        key = super().clean(value)
        return self.by_id.get(key) if key else None


class ViewForm(forms.Form):
    """Which days the calendar shows, and whose columns. Read from the query string; a value
    that does not parse is dropped, and the page falls back to today, the day view and every
    practitioner."""

    date = forms.DateField(
        required=False, label="Date", widget=forms.DateInput(attrs={"type": "date"})
    )
    view = forms.ChoiceField(required=False, choices=[(DAY, "Day"), (WEEK, "Week")], label="View")

    def __init__(self, practitioners: list[User], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        everyone = PractitionerField(practitioners, required=False, label="Practitioner")
        everyone.choices = [("", "Everyone"), *practitioner_choices(practitioners)]
        self.fields["practitioner"] = everyone

    def clean_date(self) -> dt.date | None:
        day: dt.date | None = self.cleaned_data["date"]
        return check_day(day) if day else None

    def value(self, name: str, default: Any) -> Any:
        """The cleaned value of one field, or `default` when it is empty or did not parse."""
        self.is_valid()
        found = self.cleaned_data.get(name) if name not in self.errors else None
        return found or default


class MoveForm(forms.Form):
    date = forms.DateField(label="New date", widget=forms.DateInput(attrs={"type": "date"}))
    time = forms.TimeField(
        label="New time", widget=forms.TimeInput(attrs={"type": "time", "step": 900})
    )
    accept_break = forms.BooleanField(
        required=False, label="Keep the move and accept the broken cadence"
    )
    # What the preview showed, so that confirming applies that plan and no other.
    plan = forms.CharField(max_length=limits.DOCUMENT, required=False, widget=forms.HiddenInput)

    def __init__(self, practitioners: list[User], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["practitioner"] = PractitionerField(practitioners, label="Practitioner")
        self.order_fields(["date", "time", "practitioner"])

    def clean_date(self) -> dt.date:
        return check_day(self.cleaned_data["date"])

    def starts_at(self, tz: dt.tzinfo) -> dt.datetime:
        """The new start in the clinic's time zone; call only once the form is valid."""
        return dt.datetime.combine(self.cleaned_data["date"], self.cleaned_data["time"], tzinfo=tz)


class CancelForm(forms.Form):
    reason = forms.CharField(
        label="Reason for cancelling",
        max_length=300,
        help_text="For example: the patient called, unwell.",
    )

    def clean_reason(self) -> str:
        return str(self.cleaned_data["reason"]).strip()


def _licence_marked(clinic: Any, practitioners: list[User]) -> list[tuple[str, str]]:
    """The picker's choices, those without a valid licence today marked as such: they may
    take a review or a test reading, never a visit where the practitioner injects."""
    today = timezone.now().astimezone(clinic.tz).date()
    licensed = {u.pk for u in actions.licensed_for(clinic, practitioners, logic.SESSION, today)}
    return [
        (
            str(u.pk),
            u.display_name
            if u.pk in licensed
            else f"{u.display_name} (no valid licence: reviews and test readings only)",
        )
        for u in practitioners
    ]


class SlotForm(forms.Form):
    """What the next free slot is for. The patient is chosen first (by search or from a
    chart's link), so the form knows which courses to offer."""

    patient = forms.IntegerField(widget=forms.HiddenInput)
    kind = forms.ChoiceField(
        label="Visit", choices=Appointment.Kind.choices, initial=Appointment.Kind.SESSION
    )
    course = forms.ChoiceField(label="Course", required=False)
    minutes = forms.TypedChoiceField(
        label="Length",
        coerce=int,
        choices=[(0, "The clinic's usual length"), *LENGTHS],
        initial=0,
        empty_value=0,  # type: ignore[arg-type]
        required=False,
        help_text="For a consultation or a visit without a course; a course's protocol sets "
        "the length of its visits.",
    )
    after = forms.DateTimeField(
        label="Not before",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Leave empty to start from now.",
    )

    def __init__(
        self, practitioners: list[User], patient: Patient, *args: Any, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.for_patient = patient
        field = PractitionerField(practitioners, label="Practitioner")
        field.choices = _licence_marked(patient.clinic, practitioners)
        self.fields["practitioner"] = field
        self.order_fields(["patient", "kind", "practitioner", "course", "minutes", "after"])
        self.courses = {
            str(c.pk): c
            for c in Course.objects.filter(
                patient=patient, status__in=BOOKABLE_COURSES
            ).select_related("protocol")
        }
        self.fields["course"].choices = [  # type: ignore[attr-defined]
            ("", "No course"),
            *(
                (key, f"{c.protocol.name} ({c.get_status_display().lower()})")
                for key, c in self.courses.items()
            ),
        ]

    def clean(self) -> dict[str, Any]:
        """A visit where the practitioner injects needs one whose licence is valid from the
        day the search starts (the booking path's rule, actions.may_give)."""
        data = super().clean() or {}
        who: User | None = data.get("practitioner")
        kind = data.get("kind")
        if who is not None and kind in actions.INJECTING:
            clinic = self.for_patient.clinic
            after: dt.datetime | None = data.get("after")
            today = timezone.now().astimezone(clinic.tz).date()
            day = (after or timezone.now()).astimezone(clinic.tz).date()
            expires = actions.licensed_until(clinic, {who.pk}).get(who.pk)
            if not actions.may_give(kind, expires, day):
                self.add_error(
                    "practitioner",
                    f"{actions.licence_words(who.display_name, expires, day, today)} "
                    f"{_kind_words(kind)} needs a practitioner with a valid licence; "
                    "choose another.",
                )
        return data

    def clean_patient(self) -> int:
        value: int = self.cleaned_data["patient"]
        if value != self.for_patient.pk:
            raise forms.ValidationError("Choose the patient again.")
        return value

    def clean_after(self) -> dt.datetime | None:
        after: dt.datetime | None = self.cleaned_data["after"]
        if after is not None:
            check_day(after.date())
        return after

    def clean_course(self) -> Course | None:
        key = self.cleaned_data.get("course") or ""
        return self.courses.get(key)

    def duration(self) -> dt.timedelta:
        """The course's protocol length for the visit, else the chosen length, else the clinic's."""
        course: Course | None = self.cleaned_data["course"]
        kind = self.cleaned_data["kind"]
        if course is not None and kind in logic.PROTOCOL_KINDS:
            return logic.duration(kind, course.spec, len(course.areas or []))
        if self.cleaned_data.get("minutes"):
            return dt.timedelta(minutes=self.cleaned_data["minutes"])
        return visit_types.visit_length(self.for_patient.clinic, kind, None)


class BookForm(SlotForm):
    """The slot form with the start the page proposed, sent back by the Book button."""

    starts_at = forms.DateTimeField(widget=forms.HiddenInput)

    def clean_starts_at(self) -> dt.datetime:
        starts_at: dt.datetime = self.cleaned_data["starts_at"]
        check_day(starts_at.date())
        return starts_at
