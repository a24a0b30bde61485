"""Forms for a new clinic's setup: the first manager, the week's hours, holidays, rooms, visit
lengths, and a practitioner's changes of hours. Each only reads and checks what was typed;
the views save it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib.auth.password_validation import validate_password

from mesoclinic.accounts.models import Clinic, User
from mesoclinic.lib import formats, limits
from mesoclinic.scheduling.models import Appointment, Holiday, Room, Weekday, WorkingException

Span = formats.Span


class FirstManagerForm(forms.Form):
    """The first manager's account, made with the clinic."""

    username = forms.CharField(max_length=150)
    first_name = forms.CharField(max_length=150, label="First name")
    last_name = forms.CharField(max_length=150, label="Last name")
    email = forms.EmailField()
    password = forms.CharField(
        max_length=limits.PASSWORD,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 12 characters, not a common password.",
    )

    def clean_username(self) -> str:
        username = str(self.cleaned_data["username"]).strip()
        for validator in User._meta.get_field("username").validators:
            validator(username)
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("This username is taken.")
        return username

    def clean_email(self) -> str:
        email = str(self.cleaned_data["email"]).strip()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this email already exists.")
        return email

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        password = data.get("password")
        if password:
            user = User(
                username=data.get("username", ""),
                email=data.get("email", ""),
                first_name=data.get("first_name", ""),
                last_name=data.get("last_name", ""),
            )
            try:
                validate_password(password, user)
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        return data

    def user(self) -> User:
        """The unsaved account; call only once the form is valid."""
        data = self.cleaned_data
        return User(
            username=data["username"],
            first_name=data["first_name"].strip(),
            last_name=data["last_name"].strip(),
            email=data["email"],
        )


class WeekForm(forms.Form):
    """One text box per weekday: the intervals of that day, "9:00–12:30, 14:00–18:00", or
    empty for none."""

    def __init__(
        self,
        *args: Any,
        clinic: Clinic,
        week: dict[int, list[Span]],
        what: str = "open",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.clinic = clinic
        # Said once above the days, not under each of them.
        self.example = formats.spans_text(
            [(dt.time(9), dt.time(12, 30)), (dt.time(14), dt.time(18))], clinic
        )
        self.what = what
        for day in Weekday:
            self.fields[f"day{day.value}"] = forms.CharField(
                label=str(day.label),
                required=False,
                max_length=200,
                initial=formats.spans_text(week.get(day.value, []), clinic),
            )

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        for day in Weekday:
            name = f"day{day.value}"
            try:
                data[name] = formats.parse_spans(str(data.get(name) or ""))
            except ValueError as exc:
                self.add_error(name, str(exc))
        return data

    def week(self) -> dict[int, list[Span]]:
        return {day.value: self.cleaned_data[f"day{day.value}"] for day in Weekday}


class HolidayForm(forms.ModelForm):
    class Meta:
        model = Holiday
        fields = ["date", "name"]
        labels = {"name": "Name of the holiday"}
        help_texts = {"name": "For example: Christmas Day. The clinic is closed all day."}

    def __init__(self, *args: Any, clinic: Clinic, **kwargs: Any) -> None:
        kwargs["instance"] = Holiday(clinic=clinic)
        super().__init__(*args, **kwargs)
        self.fields["date"] = formats.ClinicDateField(clinic, label="Date")

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"]).strip()
        if not name:
            raise forms.ValidationError("Name the holiday.")
        return name

    def clean_date(self) -> dt.date:
        day: dt.date = self.cleaned_data["date"]
        if Holiday.objects.filter(clinic=self.instance.clinic, date=day).exists():
            raise forms.ValidationError("This day is already a holiday.")
        return day


class RoomForm(forms.Form):
    name = forms.CharField(max_length=100, label="Room name")

    def __init__(self, *args: Any, clinic: Clinic, room: Room | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.clinic = clinic
        self.room = room
        if room is not None:
            self.fields["name"].label = f"New name for {room.name}"

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"]).strip()
        if not name:
            raise forms.ValidationError("Give the room a name.")
        taken = Room.objects.filter(clinic=self.clinic, name__iexact=name)
        if self.room is not None:
            taken = taken.exclude(pk=self.room.pk)
        if taken.exists():
            raise forms.ValidationError("The clinic already has a room with this name.")
        return name


LENGTH_CHOICES = [(m, f"{m} minutes") for m in (10, 15, 20, 30, 40, 45, 60, 75, 90, 120)]


class VisitTypesForm(forms.Form):
    """The clinic's length of each kind of visit, where no protocol gives one."""

    def __init__(self, *args: Any, lengths: dict[str, int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The consultation first: it is the one length no protocol ever gives.
        kinds = sorted(Appointment.Kind, key=lambda k: k != Appointment.Kind.CONSULTATION)
        for kind in kinds:
            choices = list(LENGTH_CHOICES)
            if lengths[kind.value] not in dict(choices):
                choices.append((lengths[kind.value], f"{lengths[kind.value]} minutes"))
            self.fields[kind.value] = forms.TypedChoiceField(
                label=str(kind.label),
                coerce=int,
                choices=sorted(choices),
                initial=lengths[kind.value],
            )


class ExceptionForm(forms.Form):
    """Time off (a whole day, or some hours) or extra hours on one date."""

    date = forms.DateField()
    kind = forms.ChoiceField(label="What", choices=WorkingException.Kind.choices)
    hours = forms.CharField(
        label="Hours",
        required=False,
        max_length=100,
        help_text="For example 13:00–17:00. Leave empty for a whole day off.",
    )
    note = forms.CharField(max_length=200, required=False, label="Note")

    def __init__(self, *args: Any, clinic: Clinic, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["date"] = formats.ClinicDateField(clinic, label="Date")
        example = formats.spans_text([(dt.time(13), dt.time(17))], clinic)
        self.fields["hours"].help_text = f"For example {example}. Leave empty for a whole day off."
        self.order_fields(["date", "kind", "hours", "note"])

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        try:
            spans = formats.parse_spans(str(data.get("hours") or ""))
        except ValueError as exc:
            self.add_error("hours", str(exc))
            return data
        if len(spans) > 1:
            self.add_error("hours", "Give one interval; add another change for a second one.")
        elif not spans and data.get("kind") == WorkingException.Kind.EXTRA_HOURS:
            self.add_error("hours", "Say when the extra hours are, such as 18:00–20:00.")
        data["span"] = spans[0] if spans else None
        return data
