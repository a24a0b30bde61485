"""Booking a patient's whole course from the chart, and the maintenance visit after it.

The page proposes the series first (the allergy test visit, then each session at the cadence,
on the patient's preferred days and times) and books it only when the front desk confirms.
Booking proposes again inside the transaction, so a slot taken in between is never
double-booked: the page then shows the new proposal with the reason."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from mesoclinic.access import access_course
from mesoclinic.accounts.models import User
from mesoclinic.billing import quotes
from mesoclinic.scheduling import actions, logic, planning
from mesoclinic.scheduling.actions import BookingRefused
from mesoclinic.scheduling.models import Weekday
from mesoclinic.scheduling.series import Preferences
from mesoclinic.web.chart import chart_url
from mesoclinic.web.context import ALL_STAFF, caller, reading


class BookCourseForm(forms.Form):
    practitioner = forms.ModelChoiceField(
        queryset=User.objects.none(),
        required=False,
        empty_label="Who gave the last session, else who planned the course",
    )
    not_before = forms.DateField(
        required=False,
        label="Not before",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The first visit goes on this day or later. Empty: from now.",
    )
    weekdays = forms.TypedMultipleChoiceField(
        choices=Weekday.choices,
        coerce=int,
        required=False,
        label="Preferred days",
        widget=forms.CheckboxSelectMultiple,
    )
    earliest_time = forms.TimeField(
        required=False, label="Not before (time)", widget=forms.TimeInput(attrs={"type": "time"})
    )
    latest_time = forms.TimeField(
        required=False, label="Not after (time)", widget=forms.TimeInput(attrs={"type": "time"})
    )
    accept_changes = forms.BooleanField(required=False, label="Book with the changes listed above")

    def __init__(self, *args: object, clinic: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        field = self.fields["practitioner"]
        assert isinstance(field, forms.ModelChoiceField)
        # Only those who may give the course's sessions today (the booking path's rule).
        today = timezone.now().astimezone(clinic.tz).date()  # type: ignore[attr-defined]
        licensed = actions.licensed_for(
            clinic,  # type: ignore[arg-type]
            planning.practitioners_of(clinic),  # type: ignore[arg-type]
            logic.SESSION,
            today,
        )
        field.queryset = User.objects.filter(pk__in=[u.pk for u in licensed]).order_by(
            "first_name", "last_name"
        )
        field.label_from_instance = _display_name  # type: ignore[assignment,method-assign]

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        early, late = data.get("earliest_time"), data.get("latest_time")
        if early and late and late <= early:
            self.add_error("latest_time", "must be after the earliest time.")
        return data

    def preferences(self) -> Preferences:
        d = self.cleaned_data
        return Preferences(
            frozenset(d.get("weekdays") or []), d.get("earliest_time"), d.get("latest_time")
        )

    def not_before_moment(self, tz: dt.tzinfo) -> dt.datetime | None:
        day = self.cleaned_data.get("not_before")
        return dt.datetime.combine(day, dt.time(0), tzinfo=tz) if day else None


def _display_name(user: User) -> str:
    return user.display_name


@login_required
def book_course(request: HttpRequest, course_id: int) -> HttpResponse:
    course = access_course(caller(request), course_id, ALL_STAFF, view=reading(request))
    tz = course.clinic.tz
    data = request.POST if request.method == "POST" else (request.GET or None)
    form = BookCourseForm(data, clinic=course.clinic)
    plan = None
    if form.is_bound and form.is_valid():
        practitioner = form.cleaned_data.get("practitioner")
        if request.method == "POST" and "book" in request.POST:
            try:
                made = planning.do_book_course(
                    course,
                    user=request.user,
                    practitioner=practitioner,
                    not_before=form.not_before_moment(tz),
                    prefs=form.preferences(),
                    accept_changes=form.cleaned_data["accept_changes"],
                    # Only the changes the page showed: not others found since.
                    seen_changes=request.POST.getlist("seen_change"),
                    via="web",
                )
            except BookingRefused as exc:
                if "changed" in exc.codes and form.cleaned_data["accept_changes"]:
                    form.add_error(
                        "accept_changes",
                        "The proposal changed while you were reading it (listed above again): "
                        "check the changes, then tick this box to book with them.",
                    )
                elif "changed" in exc.codes:
                    form.add_error(
                        "accept_changes",
                        "Some visits cannot keep what you chose (listed above): tick this box "
                        "to book them with those changes, or change your choices.",
                    )
                for r in exc.refusals:
                    if r.code != "changed":
                        form.add_error(None, r.message)
            else:
                messages.success(
                    request,
                    f"Booked {len(made)} visit{'s' if len(made) != 1 else ''}, from "
                    f"{timezone.localtime(made[0].starts_at, tz):%a %d %b %H:%M} to "
                    f"{timezone.localtime(made[-1].starts_at, tz):%a %d %b %H:%M}.",
                )
                return redirect(chart_url(course))
        plan = planning.propose_course(
            course,
            practitioner=practitioner,
            not_before=form.not_before_moment(tz),
            prefs=form.preferences(),
        )
    context = {"page": "patients", "course": course, "form": form, "plan": plan}
    quote = course.quotes.filter(status="accepted").select_related("package__invoice").first()
    if quote is not None and quote.package is not None:
        context["deposit_due"] = quotes.deposit_due(quote)
        context["deposit_invoice"] = quote.package.invoice_id
        context["deposit_invoice_number"] = quote.package.invoice.number
    return render(request, "web/book_course.html", context)


@login_required
@require_POST
def book_maintenance(request: HttpRequest, course_id: int) -> HttpResponse:
    course = access_course(caller(request), course_id, ALL_STAFF, view=reading(request))
    try:
        made = planning.do_book_maintenance(course, user=request.user, via="web")
    except BookingRefused as exc:
        for r in exc.refusals:
            messages.error(request, r.message)
    else:
        local = timezone.localtime(made.starts_at, course.clinic.tz)
        messages.success(
            request,
            f"Maintenance visit booked for {local:%a %d %b %Y %H:%M} with "
            f"{made.practitioner.display_name}.",
        )
    return redirect(chart_url(course))
