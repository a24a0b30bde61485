"""The staff calendar: a day or a week with a column per practitioner, an appointment's page
(move it with a preview of what shifts, cancel it, mark a no-show), and booking the next free
slot. Every change goes through mesoclinic.scheduling's actions, which check and audit it the
same way for this page and the API.

The grid is an HTML table of 15-minute rows, one column per practitioner (or, for one
practitioner's week, per day); an appointment is a cell spanning its rows (`rowspan`), so the
page needs no inline styles and reads as a table to a screen reader.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from mesoclinic.access import access_appointment, access_patient, audit_list
from mesoclinic.accounts.models import AuditEvent, Clinic, User, audit
from mesoclinic.patients.models import Patient
from mesoclinic.patients.search import search
from mesoclinic.scheduling import actions, logic, planning
from mesoclinic.scheduling.actions import BookingRefused, Refusal
from mesoclinic.scheduling.hours import Hours
from mesoclinic.scheduling.models import (
    Appointment,
    Room,
)
from mesoclinic.scheduling.series import Placed, VisitSpec
from mesoclinic.web.calendar_forms import (
    DAY,
    WEEK,
    BookForm,
    CancelForm,
    MoveForm,
    SlotForm,
    ViewForm,
)
from mesoclinic.web.chart import chart_url
from mesoclinic.web.context import ALL_STAFF, caller, require

STEP = 15  # minutes in a row of the grid
# The rows shown when the clinic has recorded no opening hours yet.
DEFAULT_DAY = (9 * 60, 17 * 60)
SEARCH_LIMIT = 20

Minutes = tuple[int, int]  # a stretch of a local day, in minutes from midnight


def _minutes(t: dt.time) -> int:
    return t.hour * 60 + t.minute


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


# Reading the calendar.


@dataclass
class Block:
    """An appointment as the grid shows it, in the clinic's local minutes of its day."""

    appointment: Appointment
    start: int
    end: int
    outside_hours: bool = False
    label: str = ""  # "Session 3 of 15" for a session of a course
    back_to_back: bool = False  # begins as the visit before it in the column ends


@dataclass
class Cell:
    row: int
    span: int
    kind: str  # "appts", "free" or "off"
    blocks: list[Block] = field(default_factory=list)
    label: str = ""
    book_url: str = ""  # a free row to come: booking it opens the booking form, prefilled
    book_words: str = ""

    @property
    def css(self) -> str:
        """The classes of an appointments cell: its visit's kind and status colour it, and a
        cell of one or two rows keeps each line to one line, so short visits keep the scale."""
        out = ["tight"] if self.span <= 2 else []
        if self.span == 1:
            out.append("single")
        if len(self.blocks) == 1:
            a = self.blocks[0].appointment
            out += [f"kind-{a.kind}", f"status-{a.status}"]
        return " ".join(out)


@dataclass
class Column:
    """One practitioner on one day: their hours inside the clinic's, and their visits."""

    user: User
    day: dt.date
    spans: list[Minutes]
    holiday: str
    closed: bool
    blocks: list[Block] = field(default_factory=list)
    gone: list[Appointment] = field(default_factory=list)  # cancelled and no-shows
    cells: list[Cell] = field(default_factory=list)

    @property
    def hours_parts(self) -> list[str]:
        """The practitioner's hours that day, a part per stretch ("09:00–13:00"), or why
        there are none."""
        if self.holiday:
            return [f"Holiday: {self.holiday}"]
        if self.closed:
            return ["The clinic is closed"]
        if not self.spans:
            return ["Not working"]
        return [f"{_clock(s)}–{_clock(e)}" for s, e in self.spans]

    @property
    def free_minutes(self) -> int:
        """Working minutes no active visit takes (whether a room is free is not counted)."""
        free = self.spans
        for b in self.blocks:
            free = [
                part
                for s, e in free
                for part in ((s, min(e, b.start)), (max(s, b.end), e))
                if part[0] < part[1]
            ]
        return sum(e - s for s, e in free)

    @property
    def free_words(self) -> str:
        hours, minutes = divmod(self.free_minutes, 60)
        parts = ([f"{hours} h"] if hours else []) + ([f"{minutes} min"] if minutes else [])
        return " ".join(parts) + " free" if parts else "no free time"

    def working_at(self, minute: int) -> bool:
        return any(s <= minute and minute + STEP <= e for s, e in self.spans)

    @property
    def off_label(self) -> str:
        if self.holiday:
            return self.holiday
        return "Closed" if self.closed else "Not working"


@dataclass
class Row:
    minute: int
    cells: list[Cell]

    @property
    def label(self) -> str:
        return _clock(self.minute)

    @property
    def hour(self) -> bool:
        return self.minute % 60 == 0


@dataclass
class Grid:
    """The time grid: `rows` of 15 minutes from `first` to `last` (local minutes)."""

    columns: list[Column]
    first: int
    last: int
    rows: list[Row]


def load_columns(
    clinic: Clinic, days: list[dt.date], staff: list[User], practitioner: User | None
) -> tuple[list[User], dict[tuple[int, dt.date], Column], dict[dt.date, str], tuple[int, int]]:
    """Everything the calendar shows for `days`, in five queries however many appointments
    and practitioners there are: opening hours, holidays, appointments, working hours and
    their exceptions.

    Returns the columns' users (the clinic's practitioners `staff`, or the one chosen, then
    anyone else who has an appointment in these days), a Column per (user, day), the
    holidays, and the minutes the grid must cover (opening hours, widened to every
    appointment)."""
    tz = clinic.tz
    staff = [practitioner] if practitioner is not None else staff
    hours = Hours.load(clinic, (), days[0], days[-1])
    holidays = hours.holidays
    start = dt.datetime.combine(days[0], dt.time(0), tzinfo=tz)
    end = dt.datetime.combine(days[-1] + dt.timedelta(days=1), dt.time(0), tzinfo=tz)
    appointments = Appointment.objects.filter(
        clinic=clinic, starts_at__lt=end, ends_at__gt=start
    ).select_related("patient", "practitioner", "room")
    if practitioner is not None:
        appointments = appointments.filter(practitioner=practitioner)
    found = list(appointments.order_by("starts_at", "pk"))
    users = list(staff)
    seen = {u.pk for u in users}
    # A visit whose practitioner has left the clinic's staff still shows, in a column of its own.
    for a in found:
        if a.practitioner_id not in seen:
            seen.add(a.practitioner_id)
            users.append(a.practitioner)
    hours.add_users([u.pk for u in users])

    columns: dict[tuple[int, dt.date], Column] = {}
    for user in users:
        for day in days:
            holiday = holidays.get(day, "")
            closed = not hours.opening.get(day.weekday())
            spans = [(_minutes(b), _minutes(e)) for b, e in hours.available(user.pk, day)]
            columns[(user.pk, day)] = Column(user, day, spans, holiday, closed)

    opens = [_minutes(o) for spans in hours.opening.values() for o, _ in spans]
    closes = [_minutes(c) for spans in hours.opening.values() for _, c in spans]
    first, last = (min(opens), max(closes)) if opens else DEFAULT_DAY
    labels = planning.session_labels(found)
    for a in found:
        local_start, local_end = a.starts_at.astimezone(tz), a.ends_at.astimezone(tz)
        day = local_start.date()
        column = columns.get((a.practitioner_id, day))
        if column is None:  # it began the evening before the first day shown
            continue
        if not a.active:
            column.gone.append(a)
            continue
        begin = _minutes(local_start.time())
        finish = _minutes(local_end.time()) if local_end.date() == day else 24 * 60
        block = Block(a, begin, max(finish, begin + 1), label=labels.get(a.pk, ""))
        block.back_to_back = any(b.end == block.start for b in column.blocks)
        block.outside_hours = not any(s <= block.start and block.end <= e for s, e in column.spans)
        column.blocks.append(block)
        first, last = min(first, begin), max(last, finish)
    first -= first % STEP
    last += -last % STEP
    return users, columns, holidays, (first, last)


def _slot_url(column: Column, minute: int) -> str:
    """The booking form for this practitioner from this time (the patient is chosen first)."""
    query = QueryDict(mutable=True)
    query["practitioner"] = str(column.user.pk)
    query["after"] = f"{column.day.isoformat()}T{_clock(minute)}"
    return f"{reverse('web:calendar_book')}?{query.urlencode()}"


def _fill(
    column: Column, first: int, n_rows: int, now: tuple[dt.date, int] | None = None
) -> list[Cell]:
    """The column's cells from top to bottom: appointments (visits that share a row are
    one cell), single free rows (each, from `now` on, a link that books it), and runs of
    rows when the practitioner does not work."""
    clusters: list[Cell] = []
    for b in sorted(column.blocks, key=lambda b: (b.start, b.end)):
        top = min(max((b.start - first) // STEP, 0), n_rows - 1)
        bottom = min(max(-(-(b.end - first) // STEP), top + 1), n_rows)
        if clusters and top < clusters[-1].row + clusters[-1].span:
            last = clusters[-1]
            last.span = max(last.span, bottom - last.row)
            last.blocks.append(b)
        else:
            clusters.append(Cell(top, bottom - top, "appts", [b]))
    cells: list[Cell] = []
    row, i = 0, 0
    while row < n_rows:
        if i < len(clusters) and clusters[i].row == row:
            cells.append(clusters[i])
            row += clusters[i].span
            i += 1
            continue
        upto = clusters[i].row if i < len(clusters) else n_rows
        if column.working_at(first + row * STEP):
            minute = first + row * STEP
            ahead = now is None or (column.day, minute) >= now
            cell = Cell(row, 1, "free")
            if ahead:
                cell.book_url = _slot_url(column, minute)
                cell.book_words = (
                    f"Book {column.user.display_name} on {column.day:%a} {column.day.day} "
                    f"{column.day:%b} at {_clock(minute)}"
                )
            cells.append(cell)
            row += 1
            continue
        end = row + 1
        while end < upto and not column.working_at(first + end * STEP):
            end += 1
        cells.append(Cell(row, end - row, "off", label=column.off_label if end - row > 1 else ""))
        row = end
    return cells


def build_grid(
    columns: list[Column], first: int, last: int, now: tuple[dt.date, int] | None = None
) -> Grid:
    n_rows = max((last - first) // STEP, 1)
    starts: dict[int, list[Cell]] = defaultdict(list)
    for column in columns:
        column.cells = _fill(column, first, n_rows, now)
        for cell in column.cells:
            starts[cell.row].append(cell)
    rows = [Row(first + r * STEP, starts[r]) for r in range(n_rows)]
    return Grid(columns, first, last, rows)


def _calendar_url(day: dt.date, view: str = DAY, practitioner: int | None = None) -> str:
    query = QueryDict(mutable=True)
    query["date"] = day.isoformat()
    query["view"] = view
    if practitioner:
        query["practitioner"] = str(practitioner)
    return f"{reverse('web:calendar')}?{query.urlencode()}"


# The calendar page.


@login_required
def calendar(request: HttpRequest) -> HttpResponse:
    found = require(request, ALL_STAFF)
    clinic = found.clinic
    staff = planning.practitioners_of(clinic)
    form = ViewForm(staff, request.GET)
    today = timezone.now().astimezone(clinic.tz).date()
    day: dt.date = form.value("date", today)
    view: str = form.value("view", DAY)
    chosen: User | None = form.value("practitioner", None)
    if view == WEEK:
        days = [day - dt.timedelta(days=day.weekday()) + dt.timedelta(days=n) for n in range(7)]
        step = dt.timedelta(days=7)
    else:
        days, step = [day], dt.timedelta(days=1)
    users, columns, holidays, (first, last) = load_columns(clinic, days, staff, chosen)
    chosen_id = chosen.pk if chosen is not None else None
    # Booking from a later day or week looks for a slot from its first day.
    book_query = QueryDict(mutable=True)
    if chosen_id:
        book_query["practitioner"] = str(chosen_id)
    if days[0] > today:
        book_query["after"] = f"{days[0].isoformat()}T00:00"
    context: dict[str, Any] = {
        "page": "calendar",
        "form": form,
        "view": view,
        "day": day,
        "days": days,
        "today": today,
        "holidays": holidays,
        "chosen": chosen,
        "previous_url": _calendar_url(day - step, view, chosen_id),
        "next_url": _calendar_url(day + step, view, chosen_id),
        "today_url": _calendar_url(today, view, chosen_id),
        "day_url": _calendar_url(day, DAY, chosen_id),
        "week_url": _calendar_url(day, WEEK, chosen_id),
        "book_url": f"{reverse('web:calendar_book')}?{book_query.urlencode()}".rstrip("?"),
        "gone": sorted((a for c in columns.values() for a in c.gone), key=lambda a: a.starts_at),
    }
    # The calendar names every patient it shows: the page is one read of each.
    shown = [b.appointment.patient_id for c in columns.values() for b in c.blocks]
    audit_list(caller(request), "calendar", shown + [a.patient_id for a in context["gone"]])
    local_now = timezone.now().astimezone(clinic.tz)
    now = (local_now.date(), _minutes(local_now.time()))
    if view == DAY:
        context["grid"] = build_grid([columns[(u.pk, day)] for u in users], first, last, now)
    elif chosen is not None:
        # One practitioner's week fits as a time grid with a column per day.
        context["grid"] = build_grid([columns[(chosen.pk, d)] for d in days], first, last, now)
    else:
        context["week"] = [
            (u, _calendar_url(day, WEEK, u.pk), [columns[(u.pk, d)] for d in days]) for u in users
        ]
        context["day_heads"] = [(d, _calendar_url(d, DAY), holidays.get(d, "")) for d in days]
    return render(request, "web/calendar/calendar.html", context)


# One appointment: its facts, and moving, cancelling or marking it a no-show.


def _move_form(appointment: Appointment, staff: list[User], data: Any = None) -> MoveForm:
    local = appointment.starts_at.astimezone(appointment.clinic.tz)
    return MoveForm(
        staff,
        data,
        initial={
            "date": local.date(),
            "time": local.time().replace(second=0, microsecond=0),
            "practitioner": str(appointment.practitioner_id),
        },
    )


def _staff_with(appointment: Appointment) -> list[User]:
    """The practitioners a visit may move to; its own practitioner stays a choice, even one
    no longer on the staff, so the form can say who has it now."""
    staff = planning.practitioners_of(appointment.clinic)
    if appointment.kind in actions.INJECTING:
        # Only those who may give it (the booking path's rule), from today.
        today = timezone.now().astimezone(appointment.clinic.tz).date()
        staff = actions.licensed_for(appointment.clinic, staff, appointment.kind, today)
    if appointment.practitioner_id not in {u.pk for u in staff}:
        staff.append(appointment.practitioner)
    return staff


def _detail(
    request: HttpRequest,
    appointment: Appointment,
    *,
    move_form: MoveForm | None = None,
    preview: dict[str, Any] | None = None,
    cancel_form: CancelForm | None = None,
    status: int = 200,
) -> HttpResponse:
    staff = _staff_with(appointment)
    now = timezone.now()
    local = appointment.starts_at.astimezone(appointment.clinic.tz)
    return render(
        request,
        "web/calendar/appointment.html",
        {
            "page": "calendar",
            "a": appointment,
            "open": appointment.status in planning.OPEN,
            "started": appointment.starts_at <= now,
            "move_form": move_form or _move_form(appointment, staff),
            "cancel_form": cancel_form or CancelForm(),
            "preview": preview,
            "calendar_url": _calendar_url(local.date()),
            "course_url": chart_url(appointment.course) if appointment.course else "",
        },
        status=status,
    )


@login_required
def appointment_detail(request: HttpRequest, appointment_id: int) -> HttpResponse:
    appointment = access_appointment(caller(request), appointment_id)
    audit(
        clinic=appointment.clinic,
        user=request.user,
        action=AuditEvent.Action.VIEW,
        obj=appointment,
        patient_id=appointment.patient_id,
        via="web",
    )
    return _detail(request, appointment)


def _fingerprint(plan: planning.MovePlan) -> str:
    """A short digest of what a move would change and break, so that a confirmation applies
    the plan the preview showed, not one the calendar has since turned into."""
    parts = [
        f"{c.appointment.pk}@{c.starts_at.isoformat()}/{c.practitioner_id}"
        for c in plan.changes
        if c.moved
    ]
    return hashlib.sha256("\n".join([*parts, *plan.problems]).encode()).hexdigest()[:20]


class _DryRun(Exception):
    """Raised inside the preview's transaction to roll the move back."""


def _refusals_of_move(
    appointment: Appointment, starts_at: dt.datetime, practitioner: User, user: Any
) -> list[Refusal]:
    """Every reason the server would refuse this move, besides a broken cadence: the move is
    made with do_move (accepting the break, which the preview shows on its own) inside a
    transaction that is then rolled back. So the preview runs exactly the checks of the
    confirmation (holidays, opening and working hours, overlaps, the past) and writes
    nothing."""
    try:
        with transaction.atomic():
            planning.do_move(
                appointment,
                starts_at,
                user=user,
                practitioner=practitioner,
                accept_break=True,
                via="web",
            )
            raise _DryRun
    except _DryRun:
        return []
    except BookingRefused as exc:
        return list(exc.refusals)


def _preview(
    appointment: Appointment,
    starts_at: dt.datetime,
    practitioner: User,
    staff: list[User],
    user: Any,
) -> dict[str, Any]:
    plan = planning.plan_move(appointment, starts_at, practitioner=practitioner)
    names = {u.pk: u.display_name for u in staff}
    tz = appointment.clinic.tz
    changes = [
        {
            "appointment": c.appointment,
            "this": c.appointment.pk == appointment.pk,
            "old": c.appointment.starts_at.astimezone(tz),
            "new": c.starts_at.astimezone(tz),
            "new_end": c.ends_at.astimezone(tz),
            "old_practitioner": names.get(c.appointment.practitioner_id)
            or c.appointment.practitioner.display_name,
            "new_practitioner": names.get(c.practitioner_id)
            or c.appointment.practitioner.display_name,
        }
        for c in plan.changes
        if c.moved or c.appointment.pk == appointment.pk
    ]
    return {
        "plan": plan,
        "fingerprint": _fingerprint(plan),
        "changes": changes,
        "unchanged": sum(1 for c in plan.changes[1:] if not c.moved),
        "problems": plan.problems,
        "refusals": _refusals_of_move(appointment, starts_at, practitioner, user),
        "starts_at": starts_at.astimezone(tz),
        "practitioner": practitioner,
    }


@login_required
def move(request: HttpRequest, appointment_id: int) -> HttpResponse:
    """GET: the preview of a move (changes, problems, refusals) and its confirm button.
    POST: the confirmation, applied by do_move if the plan is still the one previewed."""
    appointment = access_appointment(caller(request), appointment_id)
    staff = _staff_with(appointment)
    data = request.POST if request.method == "POST" else request.GET
    if not data:
        return redirect("web:calendar_appointment", appointment_id=appointment.pk)
    form = _move_form(appointment, staff, data)
    if not form.is_valid():
        # A preview (GET) answers 200 so that htmx shows the errors in place.
        status = 400 if request.method == "POST" else 200
        return _detail(request, appointment, move_form=form, status=status)
    tz = appointment.clinic.tz
    starts_at = form.starts_at(tz)
    practitioner: User = form.cleaned_data["practitioner"]
    preview = _preview(appointment, starts_at, practitioner, staff, request.user)
    if request.method != "POST":
        return _detail(request, appointment, move_form=form, preview=preview)
    if form.cleaned_data["plan"] != preview["fingerprint"]:
        preview["stale"] = True
        return _detail(request, appointment, move_form=form, preview=preview, status=409)
    try:
        moved = planning.do_move(
            appointment,
            starts_at,
            user=request.user,
            practitioner=practitioner,
            accept_break=form.cleaned_data["accept_break"],
            via="web",
        )
    except BookingRefused as exc:
        # The cadence problems are listed in the preview below; the error says what to do.
        if any(r.code == "cadence" for r in exc.refusals):
            form.add_error(
                None,
                "The course's cadence would break (see below) and the break was not accepted: "
                "tick “Keep the move and accept the broken cadence” to move it anyway.",
            )
        for r in exc.refusals:
            if r.code != "cadence":
                form.add_error(None, r.message)
        return _detail(request, appointment, move_form=form, preview=preview, status=409)
    later = len(moved) - 1
    local = starts_at.astimezone(tz)
    messages.success(
        request,
        f"Moved to {logic.day_words(local)} at {logic.clock(local)} with "
        f"{practitioner.display_name}"
        + (f"; {later} later visit{'s' if later != 1 else ''} shifted too." if later > 0 else ".")
        + (" The broken cadence was accepted." if preview["problems"] else ""),
    )
    return redirect(_calendar_url(local.date()) + f"#appt-{appointment.pk}")


@login_required
@require_POST
def cancel(request: HttpRequest, appointment_id: int) -> HttpResponse:
    appointment = access_appointment(caller(request), appointment_id)
    form = CancelForm(request.POST)
    if not form.is_valid():
        return _detail(request, appointment, cancel_form=form, status=400)
    try:
        actions.do_cancel(
            appointment, user=request.user, reason=form.cleaned_data["reason"], via="web"
        )
    except ValidationError as exc:
        # The visit is no longer open (cancelled or missed in another tab): say why.
        for m in exc.messages:
            messages.error(request, m)
        return redirect("web:calendar_appointment", appointment_id=appointment.pk)
    messages.success(request, f"Cancelled: {_words(appointment)}. The time is free again.")
    return redirect("web:calendar_appointment", appointment_id=appointment.pk)


@login_required
@require_POST
def no_show(request: HttpRequest, appointment_id: int) -> HttpResponse:
    appointment = access_appointment(caller(request), appointment_id)
    try:
        actions.do_mark_no_show(appointment, user=request.user, via="web")
    except ValidationError as exc:
        for m in exc.messages:
            messages.error(request, m)
    else:
        messages.success(request, f"Marked as a no-show: {_words(appointment)}.")
    return redirect("web:calendar_appointment", appointment_id=appointment.pk)


def _words(a: Appointment) -> str:
    local = a.starts_at.astimezone(a.clinic.tz)
    return (
        f"{a.get_kind_display()} for {a.patient} on {logic.day_words(local)} at "
        f"{logic.clock(local)}"
    )


# Booking the next free slot.


@dataclass
class Proposal:
    starts_at: dt.datetime
    ends_at: dt.datetime
    practitioner: User
    room: Room | None
    problems: list[str]


def _propose(
    clinic: Clinic,
    practitioner: User,
    duration: dt.timedelta,
    kind: str,
    after: dt.datetime | None,
    patient: Patient,
) -> Proposal | None:
    """The next time the practitioner and the patient are both free, and the room it takes."""
    start = planning.next_free_slot(
        clinic, practitioner, duration, not_before=after, patient=patient, kind=kind
    )
    if start is None:
        return None
    calendar = planning.Calendar(clinic, start, start + duration)
    rooms, problems = planning.assign_rooms(
        calendar, [Placed(VisitSpec(kind, duration), practitioner.pk, start)]
    )
    room = Room.objects.get(pk=rooms[0]) if rooms[0] else None
    return Proposal(start, start + duration, practitioner, room, problems)


def _patient_from(request: HttpRequest, clinic: Clinic) -> Patient | None:
    raw = request.POST.get("patient") if request.method == "POST" else request.GET.get("patient")
    if not raw or not raw.isdigit():
        return None
    return access_patient(caller(request), int(raw), ALL_STAFF)


def _query_without(request: HttpRequest, *names: str) -> str:
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()


@login_required
def book(request: HttpRequest) -> HttpResponse:
    """Find the patient, say what the visit is, see the next free slot, book it.

    1. Without a patient, search (live with htmx, or by submitting the search form).
    2. With a patient, the slot form (GET) proposes the next free start for the visit's length.
    3. The Book button posts that start back; do_book checks it again and books it, or the
       page shows every reason it was refused and proposes again."""
    found = require(request, ALL_STAFF)
    clinic = found.clinic
    staff = planning.practitioners_of(clinic)
    patient = _patient_from(request, clinic)
    context: dict[str, Any] = {"page": "calendar", "patient": patient}
    if patient is None:
        # A NUL byte cannot be stored or compared in PostgreSQL's text; no name holds one.
        query = request.GET.get("q", "").replace("\x00", "")
        results = list(search(clinic, query)[:SEARCH_LIMIT]) if query.strip() else []
        if query.strip():
            audit(
                clinic=clinic,
                user=request.user,
                action=AuditEvent.Action.VIEW,
                object_type="patients.Patient",
                via="web",
                query=query,
            )
        keep = [(n, request.GET[n]) for n in ("practitioner", "after") if request.GET.get(n)]
        context.update(
            query=query,
            results=results,
            keep=_query_without(request, "q", "patient"),
            keep_fields=keep,
        )
        return render(request, "web/calendar/book.html", context)

    initial: dict[str, Any] = {"patient": patient.pk}
    if request.GET.get("practitioner", "").isdigit():
        initial["practitioner"] = request.GET["practitioner"]
    if request.GET.get("after"):
        initial["after"] = request.GET["after"]
    after: dt.datetime | None = None
    if request.method == "POST":
        form: SlotForm = BookForm(staff, patient, request.POST)
        ready = form.is_valid()
        if not ready:
            # The patient and the start travel in hidden fields: say their errors at the top.
            hidden = [e for name in ("patient", "starts_at") for e in form.errors.get(name, [])]
            for e in hidden:
                form.add_error(None, f"The proposed slot: {e}")
        if ready:
            made = _book(request, form)
            if made is not None:
                local = made.starts_at.astimezone(clinic.tz)
                messages.success(
                    request,
                    f"Booked: {_words(made)} with {made.practitioner.display_name}"
                    + (f", {made.room}." if made.room else "."),
                )
                return redirect(_calendar_url(local.date()) + f"#appt-{made.pk}")
            # Refused: propose again from the refused start; someone may have just taken it.
            after = form.cleaned_data["starts_at"]
    else:
        finding = "kind" in request.GET
        form = SlotForm(staff, patient, request.GET if finding else None, initial=initial)
        ready = finding and form.is_valid()
        if ready:
            after = form.cleaned_data["after"]
    context["form"] = form
    context["searched"] = ready
    if ready:
        data = form.cleaned_data
        proposal = _propose(
            clinic, data["practitioner"], form.duration(), data["kind"], after, patient
        )
        context["proposal"] = proposal
        if proposal is not None:
            fields = {
                "patient": str(patient.pk),
                "kind": data["kind"],
                "practitioner": str(data["practitioner"].pk),
                "course": str(data["course"].pk) if data["course"] else "",
                "minutes": str(data["minutes"]),
            }
            step = QueryDict(mutable=True)
            step.update(fields)
            step["after"] = (
                (proposal.starts_at + dt.timedelta(minutes=STEP))
                .astimezone(clinic.tz)
                .strftime("%Y-%m-%dT%H:%M")
            )
            context["next_url"] = f"{reverse('web:calendar_book')}?{step.urlencode()}"
            context["book_fields"] = {**fields, "starts_at": proposal.starts_at.isoformat()}
    context["change_patient_url"] = (
        f"{reverse('web:calendar_book')}?{_query_without(request, 'patient', 'q')}"
    )
    status = 200 if request.method != "POST" else 409 if ready else 400
    return render(request, "web/calendar/book.html", context, status=status)


def _book(request: HttpRequest, form: SlotForm) -> Appointment | None:
    """Book the proposed start with do_book; on a refusal, put every reason on the form."""
    data = form.cleaned_data
    starts_at: dt.datetime = data["starts_at"]
    duration = form.duration()
    clinic = form.for_patient.clinic
    calendar = planning.Calendar(clinic, starts_at, starts_at + duration)
    rooms, _ = planning.assign_rooms(
        calendar, [Placed(VisitSpec(data["kind"], duration), data["practitioner"].pk, starts_at)]
    )
    try:
        return actions.do_book(
            form.for_patient,
            kind=data["kind"],
            practitioner=data["practitioner"],
            starts_at=starts_at,
            ends_at=starts_at + duration,
            course=data["course"],
            room=Room.objects.filter(pk=rooms[0]).first() if rooms[0] else None,
            user=request.user,
            via="web",
        )
    except BookingRefused as exc:
        for r in exc.refusals:
            form.add_error(None, r.message)
        return None


@login_required
@require_POST
def arrived(request: HttpRequest, appointment_id: int) -> HttpResponse:
    """Check the patient in from the calendar or the appointment's page; back to where the
    button was."""
    appointment = access_appointment(caller(request), appointment_id)
    try:
        actions.do_mark_arrived(appointment, user=request.user, via="web")
    except ValidationError as exc:
        for m in exc.messages:
            messages.error(request, m)
    else:
        messages.success(request, f"Checked in: {_words(appointment)}.")
    back = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return redirect(back)
    return redirect("web:calendar_appointment", appointment_id=appointment.pk)
