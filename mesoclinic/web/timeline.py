"""A course's history as one chronological list, and its side effects as the chart shows them.

`load(course)` reads everything in a fixed number of queries, however many sessions, tests or
side effects the course has, and `load_many(courses)` the same for several courses at once;
`build(course, records)` turns the records into events without touching the database.
`course_timeline(course)` does both.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Prefetch
from django.urls import reverse
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.courses import logic
from mesoclinic.courses.models import (
    AllergyReading,
    AllergyTest,
    AllergyTestInjection,
    Course,
    FollowUp,
    Session,
    SideEffect,
)
from mesoclinic.outcomes.models import Photo
from mesoclinic.patients.models import Consent
from mesoclinic.protocols.schema import Protocol
from mesoclinic.protocols.vocab import Area, RefusalCode
from mesoclinic.safety import logic as safety_logic
from mesoclinic.safety.models import AdverseEvent, WatchPrompt

# The order of events that share a moment: the order they happen in on a visit.
RANK = {
    "planned": 0,
    "consent": 1,
    "test_given": 2,
    "test_read": 3,
    "session": 4,
    "side_effect": 5,
    "adverse_event": 5,
    "watch_answer": 5,
    "follow_up_opened": 6,
    "side_effect_resolved": 7,
    "follow_up_closed": 8,
    "stopped": 9,
    "maintenance": 10,
}

STATUS_WORDS = {
    logic.EXPECTED: "Expected",
    logic.BEYOND_EXPECTED: "Beyond expected",
    logic.URGENT: "Urgent",
}
# The tag class for each status, from app.css.
STATUS_TONE = {logic.EXPECTED: "ok", logic.BEYOND_EXPECTED: "warn", logic.URGENT: "bad"}


@dataclass(frozen=True)
class Event:
    at: dt.datetime  # aware, in the clinic's time zone
    kind: str  # a key of RANK
    title: str
    detail: str = ""
    who: str = ""
    url: str = ""
    tone: str = ""  # "", "ok", "warn" or "bad": the tag class, from app.css
    date_only: bool = False  # a day (the maintenance window), not a moment
    time_unknown: bool = False  # no record says when (a course stopped without an audit row)


@dataclass
class EffectRow:
    """One side effect as the chart shows it. `status` is worked out now by the protocol's
    rule; it differs from the stored status only when an unresolved side effect has
    outlasted its expected time and no sweep has moved it on yet."""

    effect: SideEffect
    label: str
    status: str
    follow_ups: list[FollowUp] = field(default_factory=list)

    @property
    def status_words(self) -> str:
        return STATUS_WORDS.get(self.status, self.status)

    @property
    def tone(self) -> str:
        return STATUS_TONE.get(self.status, "")

    @property
    def outlasted(self) -> bool:
        return self.status != self.effect.status

    @property
    def open_follow_ups(self) -> list[FollowUp]:
        return [f for f in self.follow_ups if f.status == FollowUp.Status.OPEN]


@dataclass
class Records:
    sessions: list[Session]
    tests: list[AllergyTest]
    consents: list[Consent]
    side_effects: list[EffectRow]
    stopped: AuditEvent | None
    # Follow-ups that no side effect opened (an infection-watch answer, a serious adverse
    # event), the course's serious adverse events and its answered watch prompts.
    other_follow_ups: list[FollowUp] = field(default_factory=list)
    adverse_events: list[AdverseEvent] = field(default_factory=list)
    watch_answers: list[WatchPrompt] = field(default_factory=list)
    # Every watch prompt of the course, answered or not, by session and week (the chart's
    # safety card counts them and shows the answers and the next one).
    watch_prompts: list[WatchPrompt] = field(default_factory=list)

    @property
    def watch_follow_ups(self) -> list[FollowUp]:
        """The follow-ups an infection-watch answer opened."""
        opened = {p.follow_up_id for p in self.watch_prompts}
        return [f for f in self.other_follow_ups if f.pk in opened]


def name_of(user: Any) -> str:
    if user is None:
        return ""
    return str(user.display_name)


def _day(day: dt.date) -> str:
    return f"{day.day} {day:%b %Y}"


def _moment(moment: dt.datetime) -> str:
    return f"{moment:%a} {moment.day} {moment:%b %H:%M}"


def effect_label(effect: SideEffect, spec: Protocol) -> str:
    kind = spec.side_effect(effect.kind)
    if kind is not None:
        return kind.label
    described = effect.description.strip()
    return f"Other: {described}" if described else "Other"


def load(course: Course, now: dt.datetime | None = None) -> Records:
    """Everything the timeline and the chart's side effects need, in a fixed number of
    queries: the course's own row should come with its clinic, protocol and created_by."""
    return load_many([course], now)[course.pk]


def load_many(
    courses: list[Course], now: dt.datetime | None = None, consents: list[Consent] | None = None
) -> dict[int, Records]:
    """`load` for several courses at once, in the same fixed number of queries however many
    courses there are (the chart reads all of a patient's courses this way), by course id.

    1. Read the sessions, allergy tests, consents, side effects, follow-ups, serious adverse
       events and infection-watch prompts of every course, one query (or prefetch) each.
    2. Hand each record to its course, reusing the course rows given, so that no record
       reads its course again.

    `consents` are the patients' consents when the caller has read them already (the chart),
    each with its template and witness.
    """
    now = now or timezone.now()
    by_course = {c.pk: c for c in courses}
    sessions_of: dict[int, list[Session]] = {pk: [] for pk in by_course}
    by_id: dict[int, Session] = {}
    for s in (
        Session.objects.filter(course_id__in=list(by_course))
        .select_related("practitioner")
        .prefetch_related("injections", "amendments")
        .order_by("performed_at")
    ):
        s.course = by_course[s.course_id]
        sessions_of[s.course_id].append(s)
        by_id[s.pk] = s
    tests_of: dict[int, list[AllergyTest]] = {pk: [] for pk in by_course}
    for t in (
        AllergyTest.objects.filter(course_id__in=list(by_course))
        .select_related("given_by")
        .prefetch_related(
            Prefetch("readings", queryset=AllergyReading.objects.select_related("read_by")),
            Prefetch("injections", queryset=AllergyTestInjection.objects.select_related("lot")),
        )
        .order_by("given_at")
    ):
        t.course = by_course[t.course_id]
        tests_of[t.course_id].append(t)
    if consents is None:
        consents = list(
            Consent.objects.filter(
                patient_id__in={c.patient_id for c in courses},
                indication__in={c.indication for c in courses},
            ).select_related("template", "witnessed_by")
        )
    all_consents = sorted(consents, key=lambda c: (c.signed_at, c.pk))
    # Only the sessions read above, so each side effect finds its session in `by_id`.
    effects = SideEffect.objects.filter(session_id__in=list(by_id)).select_related("reported_by")
    effects = effects.prefetch_related(
        Prefetch(
            "follow_ups",
            queryset=FollowUp.objects.select_related("closed_by").order_by("opened_at"),
        ),
        # The patient's photos of it, from the portal's diary.
        Prefetch("photos", queryset=Photo.objects.order_by("taken_at", "id")),
    ).order_by("-onset_at")
    rows_of: dict[int, list[EffectRow]] = {pk: [] for pk in by_course}
    for effect in effects:
        # The sessions are already read; reuse them rather than one query per side effect.
        effect.session = by_id[effect.session_id]
        spec = by_course[effect.session.course_id].spec
        live, _ = logic.side_effect_status(
            spec.side_effect(effect.kind),
            effect.grade,
            effect.onset_at,
            effect.resolved_at,
            now,
            spec.urgent_from_grade.v,
        )
        rows_of[effect.session.course_id].append(
            EffectRow(
                effect=effect,
                label=effect_label(effect, spec),
                status=live,
                follow_ups=list(effect.follow_ups.all()),
            )
        )
    stopped_of: dict[str, AuditEvent] = {}
    stopped_ids = [str(c.pk) for c in courses if c.status == Course.Status.STOPPED]
    if stopped_ids:
        # The course keeps its stop reason but not when or by whom: the audit row has both.
        for a in (
            AuditEvent.objects.filter(
                object_type=Course._meta.label,
                object_id__in=stopped_ids,
                action=AuditEvent.Action.UPDATE,
                detail__status=Course.Status.STOPPED.value,
            )
            .select_related("user")
            .order_by("-at")
        ):
            stopped_of.setdefault(a.object_id, a)
    other_of: dict[int, list[FollowUp]] = {pk: [] for pk in by_course}
    for f in (
        FollowUp.objects.filter(session_id__in=list(by_id), side_effect__isnull=True)
        .select_related("closed_by")
        .order_by("opened_at")
    ):
        f.session = by_id[f.session_id]
        other_of[f.session.course_id].append(f)
    events_of: dict[int, list[AdverseEvent]] = {pk: [] for pk in by_course}
    # What the chart's safety card shows of each event too (its lots, the side effect).
    for e in (
        AdverseEvent.objects.filter(course_id__in=list(by_course))
        .select_related("reported_by", "session", "side_effect")
        .prefetch_related("suspected_lots__product")
    ):
        events_of[e.course_id].append(e)
    prompts_of: dict[int, list[WatchPrompt]] = {pk: [] for pk in by_course}
    # Four prompts a session: each takes its session from the rows read above, rather than a
    # copy of it read again by a join.
    for p in WatchPrompt.objects.filter(session_id__in=list(by_id)).select_related("follow_up"):
        p.session = by_id[p.session_id]
        prompts_of[p.session.course_id].append(p)
    for prompts in prompts_of.values():
        prompts.sort(key=lambda p: (p.session.number, p.week, p.pk))
    out = {}
    for pk, course in by_course.items():
        prompts = prompts_of[pk]
        out[pk] = Records(
            sessions=sessions_of[pk],
            tests=tests_of[pk],
            # A consent belongs to the course it was taken for: the same indication and areas.
            consents=[
                c
                for c in all_consents
                if c.patient_id == course.patient_id
                and c.indication == course.indication
                and sorted(c.areas or []) == sorted(course.areas)
            ],
            side_effects=rows_of[pk],
            stopped=stopped_of.get(str(pk)) if course.status == Course.Status.STOPPED else None,
            other_follow_ups=other_of[pk],
            adverse_events=events_of[pk],
            watch_answers=sorted(
                (p for p in prompts if p.answered_at is not None),
                key=lambda p: p.answered_at or now,
            ),
            watch_prompts=prompts,
        )
    return out


def _area_labels(areas: list[str]) -> str:
    return ", ".join(Area(a).label if a in Area.values else a for a in areas)


def build(course: Course, records: Records) -> list[Event]:
    """The course's events, oldest first, each in the clinic's time zone.

    1. Collect one event per recorded fact: the plan, consents, the allergy test and its
       readings, sessions, side effects and their resolution, follow-ups opened and closed,
       the stop, and the maintenance window once the course is completed.
    2. Sort by time; events at the same moment keep the order of a visit (RANK).
    """
    tz = course.clinic.tz
    spec = course.spec

    def local(moment: dt.datetime) -> dt.datetime:
        return moment.astimezone(tz)

    events: list[Event] = [
        Event(
            at=local(course.created_at),
            kind="planned",
            title="Course planned",
            detail=(
                f"{course.protocol.name}, protocol v{course.protocol.version} · "
                f"{course.planned_sessions} sessions every {course.cadence_days} days · "
                f"{_area_labels(list(course.areas))}"
            ),
            who=name_of(course.created_by),
        )
    ]
    for c in records.consents:
        events.append(
            Event(
                at=local(c.signed_at),
                kind="consent",
                title="Consent signed",
                detail=(
                    f"Text v{c.template.version}, signed by {c.signed_name} "
                    f"({c.get_method_display().lower()})"
                ),
                who=name_of(c.witnessed_by),
                tone="ok",
            )
        )
    for t in records.tests:
        sites = "; ".join(f"{i.site}: lot {i.lot.lot_number}" for i in t.injections.all())
        events.append(
            Event(
                at=local(t.given_at),
                kind="test_given",
                title="Allergy test given",
                detail=sites,
                who=name_of(t.given_by),
            )
        )
        for r in t.readings.all():
            tone = "ok" if r.result == AllergyReading.Result.NONE else "bad"
            events.append(
                Event(
                    at=local(r.read_at),
                    kind="test_read",
                    title=f"Allergy test read: {r.get_result_display()}",
                    detail=r.notes,
                    who=name_of(r.read_by),
                    tone=tone,
                )
            )
    for s in records.sessions:
        maintenance = s.kind == Session.Kind.MAINTENANCE
        detail = _area_labels(s.areas)
        if s.override_codes:
            labels = dict(RefusalCode.choices)
            overridden = ", ".join(str(labels.get(c, c)) for c in s.override_codes)
            detail += f" · overridden: {overridden} ({s.override_reason})"
        if s.current_notes.strip():
            amended = " (amended)" if s.current_notes != s.notes else ""
            detail += f" · notes{amended}: {s.current_notes.strip()}"
        events.append(
            Event(
                at=local(s.performed_at),
                kind="session",
                title=f"Session {s.number}" + (" (maintenance)" if maintenance else ""),
                detail=detail,
                who=name_of(s.practitioner),
                url=reverse("web:session", args=[s.pk]),
                tone="warn" if s.override_codes else "",
            )
        )
    for row in records.side_effects:
        e = row.effect
        reported = f"reported {_moment(local(e.reported_at))}"
        events.append(
            Event(
                at=local(e.onset_at),
                kind="side_effect",
                title=f"Side effect: {row.label}, grade {e.grade} (session {e.session.number})",
                detail=f"{STATUS_WORDS.get(e.status, e.status)} · {reported}",
                who=name_of(e.reported_by),
                tone=STATUS_TONE.get(e.status, ""),
            )
        )
        if e.resolved_at is not None:
            events.append(
                Event(
                    at=local(e.resolved_at),
                    kind="side_effect_resolved",
                    title=f"Side effect resolved: {row.label}",
                )
            )
        for f in row.follow_ups:
            events.append(
                Event(
                    at=local(f.opened_at),
                    kind="follow_up_opened",
                    title=f"Follow-up opened ({f.get_priority_display().lower()})",
                    detail=f.reason,
                    tone="bad" if f.priority == FollowUp.Priority.URGENT else "warn",
                )
            )
            if f.closed_at is not None:
                events.append(
                    Event(
                        at=local(f.closed_at),
                        kind="follow_up_closed",
                        title="Follow-up closed",
                        detail=f.outcome,
                        who=name_of(f.closed_by),
                        tone="ok",
                    )
                )
    events += _safety_events(records, local)
    if course.status == Course.Status.STOPPED:
        latest = max(e.at for e in events)
        stop = records.stopped
        events.append(
            Event(
                at=local(stop.at) if stop else latest,
                kind="stopped",
                title="Course stopped",
                detail=course.stop_reason,
                who=name_of(stop.user) if stop else "",
                tone="bad",
                time_unknown=stop is None,
            )
        )
    if course.status in (Course.Status.COMPLETED, Course.Status.MAINTENANCE) and records.sessions:
        # From the last session, maintenance ones included, as Course.progress() counts it.
        last = max(s.performed_at for s in records.sessions)
        window = logic.maintenance_window(local(last).date(), spec)
        start = dt.date.fromisoformat(window["from"])
        end = dt.date.fromisoformat(window["to"])
        events.append(
            Event(
                at=dt.datetime.combine(start, dt.time(0), tzinfo=tz),
                kind="maintenance",
                title="Maintenance window",
                detail=f"From {_day(start)} to {_day(end)}",
                date_only=True,
            )
        )
    return sorted(events, key=lambda e: (e.at, RANK[e.kind]))


def _follow_up_events(f: FollowUp, local: Any) -> list[Event]:
    opened = Event(
        at=local(f.opened_at),
        kind="follow_up_opened",
        title=f"Follow-up opened ({f.get_priority_display().lower()})",
        detail=f.reason,
        tone="bad" if f.priority == FollowUp.Priority.URGENT else "warn",
    )
    if f.closed_at is None:
        return [opened]
    closed = Event(
        at=local(f.closed_at),
        kind="follow_up_closed",
        title="Follow-up closed",
        detail=f.outcome,
        who=name_of(f.closed_by),
        tone="ok",
    )
    return [opened, closed]


def _safety_events(records: Records, local: Any) -> list[Event]:
    """Serious adverse events, infection-watch answers, and the follow-ups they opened."""
    events: list[Event] = []
    for a in records.adverse_events:
        events.append(
            Event(
                at=local(a.onset_at),
                kind="adverse_event",
                title=(
                    f"Serious adverse event: {a.get_kind_display()}, CTCAE grade "
                    f"{a.ctcae_grade} (session {a.session.number})"
                ),
                detail=f"{a.get_outcome_display()} · reported {_moment(local(a.reported_at))}",
                who=name_of(a.reported_by),
                tone="bad" if a.ctcae_grade >= 3 else "warn",
            )
        )
    for p in records.watch_answers:
        signs = [safety_logic.SIGN_WORDS[s] for s in safety_logic.reported(p.answers)]
        notes = str(p.answers.get("notes") or "")
        events.append(
            Event(
                at=local(p.answered_at),
                kind="watch_answer",
                title=f"Infection watch, week {p.week} (session {p.session.number}): "
                + (", ".join(signs) if signs else "nothing to report"),
                detail=f"“{notes}”" if notes else "",
                who="the patient",
                tone="bad" if p.warning_signs else ("warn" if signs else "ok"),
            )
        )
    for f in records.other_follow_ups:
        events += _follow_up_events(f, local)
    return events


def course_timeline(course: Course, now: dt.datetime | None = None) -> list[Event]:
    return build(course, load(course, now))
