"""A new clinic's setup pages for its managers: the setup guide (and, for a superuser with no
clinic yet, the first-run page that creates one), opening hours and holidays, rooms, visit
lengths, and each practitioner's hours. The work is done in ops/setup.py and
scheduling/setup_actions.py; these views read the forms and show the result."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from mesoclinic.access import (
    access_holiday,
    access_member,
    access_room,
    access_working_exception,
    holidays_for,
    members_for,
    rooms_for,
)
from mesoclinic.accounts.models import Clinic, Membership
from mesoclinic.ops import setup
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.scheduling import logic
from mesoclinic.scheduling import setup_actions as actions
from mesoclinic.scheduling.models import WorkingException
from mesoclinic.scheduling.visit_types import clinic_lengths
from mesoclinic.web.context import MANAGER, caller, membership, require
from mesoclinic.web.manage_forms import ClinicSettingsForm
from mesoclinic.web.setup_forms import (
    ExceptionForm,
    HolidayForm,
    RoomForm,
    VisitTypesForm,
    WeekForm,
)

PAGE = "setup"


@login_required
def guide(request: HttpRequest) -> HttpResponse:
    """The checklist of what the clinic still has to set up; for a superuser who belongs to no
    clinic yet, the first-run form that creates one with them as its manager."""
    if membership(request) is None and request.user.is_superuser:
        return _first_run(request)
    found = require(request, MANAGER)
    clinic = found.clinic
    if request.method == "POST":
        setup.do_finish_setup(clinic, request.user)
        messages.success(request, "The clinic is set up. You can come back to this guide.")
        return redirect("web:today")
    steps = setup.checklist(clinic)
    practitioners = (
        members_for(caller(request), MANAGER)
        .filter(role__in=[Membership.Role.PRACTITIONER, Membership.Role.MANAGER])
        .select_related("user")
        .order_by("user__last_name", "user__first_name")
    )
    return render(
        request,
        "web/setup/guide.html",
        {
            "page": PAGE,
            "steps": steps,
            "complete": setup.is_complete(steps),
            "remaining": sum(1 for s in steps if not s.done),
            "practitioners": practitioners,
        },
    )


def _first_run(request: HttpRequest) -> HttpResponse:
    form = ClinicSettingsForm(request.POST if request.method == "POST" else None, instance=Clinic())
    if request.method == "POST" and form.is_valid():
        try:
            clinic = setup.do_create_clinic(
                form.instance,
                request.user,  # type: ignore[arg-type]
                password=None,
                another=True,
                via="web",
                by=request.user,
            )
        except setup.ClinicExists:  # pragma: no cover - `another` is always given here.
            raise PermissionDenied from None
        request.session["clinic_id"] = clinic.pk
        messages.success(request, f"{clinic.name} was created, with you as its manager.")
        return redirect("web:manage_setup")
    return render(request, "web/setup/first_run.html", {"page": PAGE, "form": form})


@login_required
def opening_hours(request: HttpRequest) -> HttpResponse:
    clinic = require(request, MANAGER).clinic
    posted = request.POST if request.method == "POST" else None
    which = request.POST.get("form") if posted else None
    week_form = WeekForm(
        posted if which == "week" else None, clinic=clinic, week=actions.opening_week(clinic)
    )
    holiday_form = HolidayForm(posted if which == "holiday" else None, clinic=clinic)
    if which == "week" and week_form.is_valid():
        actions.do_set_opening_hours(clinic, week_form.week(), request.user)
        messages.success(request, "Opening hours saved.")
        return redirect("web:manage_opening_hours")
    if which == "holiday" and holiday_form.is_valid():
        holiday = actions.do_add_holiday(holiday_form.instance, request.user)
        messages.success(request, f"{holiday.name} was added: the clinic is closed that day.")
        return redirect("web:manage_opening_hours")
    holidays = holidays_for(caller(request), MANAGER).order_by("date")
    return render(
        request,
        "web/setup/opening_hours.html",
        {"page": PAGE, "week_form": week_form, "holiday_form": holiday_form, "holidays": holidays},
    )


@login_required
@require_POST
def delete_holiday(request: HttpRequest, holiday_id: int) -> HttpResponse:
    holiday = access_holiday(caller(request), holiday_id)
    actions.do_remove_holiday(holiday, request.user)
    messages.success(request, f"{holiday.name} was removed: the clinic opens as usual that day.")
    return redirect("web:manage_opening_hours")


@login_required
def rooms(request: HttpRequest) -> HttpResponse:
    clinic = require(request, MANAGER).clinic
    form = RoomForm(request.POST or None, clinic=clinic)
    if request.method == "POST" and form.is_valid():
        room = actions.do_add_room(clinic, form.cleaned_data["name"], request.user)
        messages.success(request, f"{room.name} was added.")
        return redirect("web:manage_rooms")
    return _rooms_page(request, form, status=400 if request.method == "POST" else 200)


def _rooms_page(
    request: HttpRequest, form: RoomForm, rename: RoomForm | None = None, status: int = 200
) -> HttpResponse:
    rows = [
        {
            "room": room,
            "future": actions.future_visits(room),
            "form": rename
            if rename is not None and rename.room == room
            else RoomForm(
                initial={"name": room.name}, clinic=room.clinic, room=room, prefix=f"r{room.pk}"
            ),
        }
        for room in rooms_for(caller(request), MANAGER).order_by("-active", "name")
    ]
    return render(
        request, "web/setup/rooms.html", {"page": PAGE, "form": form, "rows": rows}, status=status
    )


@login_required
@require_POST
def room(request: HttpRequest, room_id: int) -> HttpResponse:
    """Rename, close, reopen or delete one room (the button pressed says which)."""
    found = access_room(caller(request), room_id)
    action = request.POST.get("action", "")
    if action == "rename":
        form = RoomForm(request.POST, clinic=found.clinic, room=found, prefix=f"r{found.pk}")
        if not form.is_valid():
            return _rooms_page(request, RoomForm(clinic=found.clinic), form, status=400)
        before = found.name
        actions.do_rename_room(found, form.cleaned_data["name"], request.user)
        messages.success(request, f"{before} is now called {found.name}.")
    elif action in ("deactivate", "activate"):
        actions.do_set_room_active(found, action == "activate", request.user)
        if action == "activate":
            messages.success(request, f"{found.name} takes bookings again.")
        else:
            future = actions.future_visits(found)
            kept = (
                f" The {future} visit{'s' if future != 1 else ''} already booked in it stay "
                "booked; move them from the calendar if the room cannot be used."
                if future
                else ""
            )
            messages.success(
                request,
                f"{found.name} is closed: it takes no new bookings and keeps its "
                f"past visits.{kept}",
            )
    elif action == "delete":
        try:
            actions.do_delete_room(found, request.user)
        except actions.RoomInUse:
            messages.error(
                request,
                f"{found.name} cannot be deleted because visits were booked in it, and they "
                "must keep where they took place. Close it instead: it then takes no new "
                "bookings.",
            )
        else:
            messages.success(request, f"{found.name} was deleted.")
    return redirect("web:manage_rooms")


@login_required
def visit_types(request: HttpRequest) -> HttpResponse:
    clinic = require(request, MANAGER).clinic
    lengths = clinic_lengths(clinic)
    form = VisitTypesForm(request.POST or None, lengths=lengths)
    if request.method == "POST" and form.is_valid():
        changed = actions.do_set_visit_lengths(clinic, form.cleaned_data, request.user)
        messages.success(request, "Visit lengths saved." if changed else "Nothing changed.")
        return redirect("web:manage_visit_types")
    return render(
        request,
        "web/setup/visit_types.html",
        {"page": PAGE, "form": form, "protocols": _protocol_lengths(clinic)},
    )


def _protocol_lengths(clinic: Clinic) -> list[dict[str, object]]:
    """Each of the clinic's protocols with the length of each visit it describes."""
    latest: dict[str, ClinicProtocol] = {}
    for p in ClinicProtocol.objects.filter(clinic=clinic).order_by("key", "version"):
        latest[p.key] = p
    rows = []
    for p in latest.values():
        visits = logic.visits_of(p.spec)
        rows.append(
            {
                "name": p.name,
                "allergy_test": visits.allergy_test_minutes.v,
                "test_reading": visits.test_reading_minutes.v,
                "session": visits.session_minutes.v,
                "extra_area": visits.extra_area_minutes.v,
                "review": visits.review_minutes.v,
            }
        )
    return rows


@login_required
def member_hours(request: HttpRequest, membership_id: int) -> HttpResponse:
    """One practitioner's weekly hours, and their time off and extra hours on given dates."""
    member = access_member(caller(request), membership_id)
    clinic, person = member.clinic, member.user
    posted = request.POST if request.method == "POST" else None
    which = request.POST.get("form") if posted else None
    week_form = WeekForm(
        posted if which == "week" else None,
        clinic=clinic,
        week=actions.working_week(clinic, person),
        what="working",
    )
    exception_form = ExceptionForm(posted if which == "exception" else None, clinic=clinic)
    if which == "week" and week_form.is_valid():
        week = week_form.week()
        actions.do_set_working_hours(clinic, person, week, request.user)
        messages.success(request, f"The weekly hours of {person.display_name} were saved.")
        outside = actions.outside_opening(clinic, week)
        if outside:
            messages.warning(
                request,
                f"On {', '.join(outside)} these hours go beyond the clinic's opening hours: "
                "no visit can be booked while the clinic is closed.",
            )
        return redirect("web:manage_member_hours", membership_id=member.pk)
    if which == "exception" and exception_form.is_valid():
        data = exception_form.cleaned_data
        clash = actions.exception_clash(clinic, person, data["date"], data["span"])
        if clash:
            exception_form.add_error("date", clash)
        else:
            span = data["span"]
            actions.do_add_exception(
                WorkingException(
                    clinic=clinic,
                    user=person,
                    date=data["date"],
                    kind=data["kind"],
                    starts=span[0] if span else None,
                    ends=span[1] if span else None,
                    note=data["note"].strip(),
                ),
                request.user,
            )
            messages.success(request, f"The change of hours of {person.display_name} was added.")
            return redirect("web:manage_member_hours", membership_id=member.pk)
    exceptions = WorkingException.objects.filter(clinic=clinic, user=person).order_by(
        "date", "starts"
    )
    return render(
        request,
        "web/setup/member_hours.html",
        {
            "page": PAGE,
            "member": member,
            "week_form": week_form,
            "exception_form": exception_form,
            "exceptions": exceptions,
        },
    )


@login_required
@require_POST
def delete_exception(request: HttpRequest, membership_id: int, exception_id: int) -> HttpResponse:
    member = access_member(caller(request), membership_id)
    exception = access_working_exception(caller(request), exception_id)
    if exception.user_id != member.user_id:
        raise PermissionDenied
    actions.do_remove_exception(exception, request.user)
    messages.success(request, "The change of hours was removed.")
    return redirect("web:manage_member_hours", membership_id=member.pk)
