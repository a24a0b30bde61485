"""Pure calculations for a course: session windows, the plan, progress, aftercare and the
status of a side effect. No database, no Django: everything comes in as arguments."""

from __future__ import annotations

import calendar
import datetime as dt
import zoneinfo
from dataclasses import dataclass

from mesoclinic.protocols.schema import Protocol, SideEffectKind
from mesoclinic.protocols.vocab import describe_source, name_sources


def add_months(day: dt.date, months: int) -> dt.date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def same_local_time_later(moment: dt.datetime, days: int, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """`days` later at the same wall-clock time in `tz`, so a weekly 10:00 session stays at
    10:00 across a daylight-saving change."""
    local = moment.astimezone(tz)
    later = dt.datetime.combine(local.date() + dt.timedelta(days=days), local.time(), tzinfo=tz)
    return later


@dataclass(frozen=True)
class Window:
    earliest: dt.datetime
    due: dt.datetime
    latest: dt.datetime

    def as_dict(self) -> dict[str, str]:
        return {
            "earliest": self.earliest.isoformat(),
            "due": self.due.isoformat(),
            "latest": self.latest.isoformat(),
        }


def next_window(
    last_session_at: dt.datetime, cadence_days: int, tolerance_days: int, tz: zoneinfo.ZoneInfo
) -> Window:
    # As same_local_time_later, converting to local time once for the three edges: Today
    # works out hundreds of windows on every load.
    local = last_session_at.astimezone(tz)
    day, clock = local.date(), local.time()

    def later(days: int) -> dt.datetime:
        return dt.datetime.combine(day + dt.timedelta(days=days), clock, tzinfo=tz)

    return Window(
        earliest=later(cadence_days - tolerance_days),
        due=later(cadence_days),
        latest=later(cadence_days + tolerance_days),
    )


def sources(items: list[str]) -> list[dict[str, str]]:
    return [{"source": s, "label": describe_source(s)} for s in items]


def plan(
    protocol: Protocol,
    *,
    planned_sessions: int,
    cadence_days: int,
    first_session_on: dt.date,
    currency: str,
) -> dict[str, object]:
    """The plan a patient and the front desk see before the course starts.

    1. Session n is due `(n - 1) * cadence_days` after the first, within ± the tolerance.
    2. The cost is the per-session price range times the number of sessions.
    3. Each milestone is placed at the session it is expected after, with its sources.
    4. Maintenance starts the protocol's months after the last session is due.
    """
    tolerance = protocol.cadence.tolerance_days.v
    windows = []
    for n in range(1, planned_sessions + 1):
        due = first_session_on + dt.timedelta(days=(n - 1) * cadence_days)
        windows.append(
            {
                "number": n,
                "earliest": (due - dt.timedelta(days=tolerance if n > 1 else 0)).isoformat(),
                "due": due.isoformat(),
                "latest": (due + dt.timedelta(days=tolerance)).isoformat(),
            }
        )
    price = protocol.price_per_session.chosen
    cost: dict[str, object] = {
        "per_session_min": price.value.min,
        "per_session_max": price.value.max,
        "sessions": planned_sessions,
        "total_min": price.value.min * planned_sessions,
        "total_max": price.value.max * planned_sessions,
        "currency": price.value.currency,
        "sources": sources(price.source),
    }
    if price.value.currency != currency:
        cost["note"] = (
            f"The protocol's price is in {price.value.currency}; the clinic works in {currency}. "
            "A manager should set the clinic's own price in its protocol copy."
        )
    if protocol.comparison is not None:
        comp = protocol.comparison.chosen
        cost["comparison"] = {
            "label": comp.value.label,
            "amount": comp.value.amount,
            "currency": comp.value.currency,
            "sources": sources(comp.source),
        }
    milestones = []
    for m in protocol.milestones:
        chosen = m.after_sessions.chosen
        at = min(chosen.value.max, planned_sessions)
        milestones.append(
            {
                "key": m.key,
                "label": m.label,
                "after_sessions": {"min": chosen.value.min, "max": chosen.value.max},
                "expected_by": windows[at - 1]["due"] if at >= 1 else None,
                "improvement_percent": m.improvement_percent,
                # Shown as "a single source" only when one source stands alone; where the
                # seeds disagree the milestone is marked disputed instead.
                "single_source": len(chosen.source) == 1 and m.after_sessions.options is None,
                "disputed": m.after_sessions.options is not None,
                "note": name_sources(chosen.note),
                "sources": sources(chosen.source),
            }
        )
    months = protocol.maintenance_months.chosen
    last_due = dt.date.fromisoformat(str(windows[-1]["due"]))
    return {
        "protocol": protocol.key,
        "sessions": windows,
        "cadence_days": cadence_days,
        "tolerance_days": tolerance,
        "allergy_test": {
            "injections": protocol.allergy_test.injections.v,
            "wait_hours": protocol.allergy_test.wait_hours.v,
            "sources": sources(protocol.allergy_test.wait_hours.chosen.source),
        },
        "before_each_session": [
            {"key": i.key, "text": i.text, "sources": sources(i.source)}
            for i in protocol.before_session.instructions
        ],
        "cost": cost,
        "insurance": {
            "text": protocol.insurance.v,
            "sources": sources(protocol.insurance.chosen.source),
        },
        "downtime": {
            "text": protocol.downtime.v,
            "sources": sources(protocol.downtime.chosen.source),
        },
        "durability": {
            "text": protocol.durability.v,
            "sources": sources(protocol.durability.chosen.source),
        },
        "milestones": milestones,
        "maintenance_window": {
            "from": add_months(last_due, months.value.min).isoformat(),
            "to": add_months(last_due, months.value.max).isoformat(),
            "every_months": {"min": months.value.min, "max": months.value.max},
            "sources": sources(months.source),
        },
    }


def maintenance_window(last_session_on: dt.date, protocol: Protocol) -> dict[str, str]:
    months = protocol.maintenance_months.v
    return {
        "from": add_months(last_session_on, months.min).isoformat(),
        "to": add_months(last_session_on, months.max).isoformat(),
    }


def _clock(until: dt.datetime, performed: dt.datetime) -> str:
    if until.date() == performed.date():
        return f"{until:%H:%M}"
    return f"{until:%H:%M} on {until:%a %d %b}"


def aftercare(
    protocol: Protocol, performed_at: dt.datetime, areas: set[str], tz: zoneinfo.ZoneInfo
) -> list[dict[str, object]]:
    """Aftercare for one session, with clock times in the clinic's time zone. A rule limited
    to some areas (no makeup after a facial session) applies only when one was treated."""
    performed = performed_at.astimezone(tz)
    items: list[dict[str, object]] = []
    for rule in protocol.aftercare:
        if rule.areas is not None and not areas & {a.value for a in rule.areas}:
            continue
        item: dict[str, object] = {"key": rule.key, "sources": sources(rule.source)}
        if rule.hours is not None:
            # Add the hours in UTC: adding them to a local time would add wall-clock hours,
            # one too many or too few across a daylight-saving change.
            later = performed_at.astimezone(dt.UTC) + dt.timedelta(hours=rule.hours.v)
            until = later.astimezone(tz)
            item["text"] = rule.text.replace("{until}", _clock(until, performed))
            item["until"] = until.isoformat()
        else:
            item["text"] = rule.text
            item["until"] = None
        items.append(item)
    return items


EXPECTED = "expected"
BEYOND_EXPECTED = "beyond_expected"
URGENT = "urgent"


def side_effect_status(
    kind: SideEffectKind | None,
    grade: int,
    onset_at: dt.datetime,
    resolved_at: dt.datetime | None,
    now: dt.datetime,
    urgent_from_grade: int,
) -> tuple[str, dt.datetime | None]:
    """(status, expected_until) for a side effect.

    1. Urgent: a kind the protocol marks urgent (infection, allergic reaction, ulceration,
       necrosis) or a CTCAE grade at or above the protocol's threshold (3).
    2. A kind the protocol does not list ("other") has no expected course: beyond expected.
    3. Otherwise it is expected until onset + the protocol's duration; lasting past that
       (resolved later, or still unresolved now) is beyond expected.
    """
    # Real hours, counted in UTC, whatever zone onset_at is given in.
    expected_until = (
        onset_at.astimezone(dt.UTC) + dt.timedelta(hours=kind.expected_hours.v)
        if kind is not None and kind.expected_hours is not None
        else None
    )
    if grade >= urgent_from_grade or (kind is not None and kind.urgent):
        return URGENT, expected_until
    if expected_until is None:
        return BEYOND_EXPECTED, None
    end = resolved_at if resolved_at is not None else now
    return (BEYOND_EXPECTED if end > expected_until else EXPECTED), expected_until
