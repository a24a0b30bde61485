"""When the clinic is open and when each practitioner works, read once for a stretch of days.

Booking checks, free time, the calendar page and the optimiser all ask "is this practitioner
working at that time?"; they all read the answer here, so a rule about hours changes in one
place.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field

from mesoclinic.accounts.models import Clinic
from mesoclinic.scheduling import logic
from mesoclinic.scheduling.models import Holiday, OpeningHours, WorkingException, WorkingHours


@dataclass
class Hours:
    """Opening hours (merged, per weekday), holidays, and each loaded practitioner's weekly
    template and exceptions from `first` to `last`. Four queries, whatever the number of
    practitioners or days."""

    clinic: Clinic
    first: dt.date
    last: dt.date
    opening: dict[int, list[logic.Span]] = field(default_factory=dict)
    holidays: dict[dt.date, str] = field(default_factory=dict)
    template: dict[tuple[int, int], list[logic.Span]] = field(default_factory=dict)
    exceptions: dict[tuple[int, dt.date], list[WorkingException]] = field(default_factory=dict)

    @classmethod
    def load(cls, clinic: Clinic, users: Collection[int], first: dt.date, last: dt.date) -> Hours:
        opening: dict[int, list[logic.Span]] = defaultdict(list)
        for o in OpeningHours.objects.filter(clinic=clinic):
            opening[o.weekday].append((o.opens, o.closes))
        hours = cls(
            clinic,
            first,
            last,
            opening={weekday: logic.merge(spans) for weekday, spans in opening.items()},
            holidays=dict(
                Holiday.objects.filter(clinic=clinic, date__range=(first, last)).values_list(
                    "date", "name"
                )
            ),
        )
        hours.add_users(users)
        return hours

    def add_users(self, users: Collection[int]) -> None:
        """Read the templates and exceptions of more practitioners (two queries)."""
        if not users:
            return
        template: dict[tuple[int, int], list[logic.Span]] = defaultdict(list)
        for w in WorkingHours.objects.filter(clinic=self.clinic, user_id__in=users):
            template[(w.user_id, w.weekday)].append((w.starts, w.ends))
        exceptions: dict[tuple[int, dt.date], list[WorkingException]] = defaultdict(list)
        for e in WorkingException.objects.filter(
            clinic=self.clinic, user_id__in=users, date__range=(self.first, self.last)
        ):
            exceptions[(e.user_id, e.date)].append(e)
        self.template.update(template)
        self.exceptions.update(exceptions)

    def open_on(self, day: dt.date) -> list[logic.Span]:
        """The clinic's opening hours on `day`: none on a holiday."""
        if day in self.holidays:
            return []
        return self.opening.get(day.weekday(), [])

    def working(self, user_id: int, day: dt.date) -> list[logic.Span]:
        """The practitioner's hours on `day`: the template plus extra hours, less time off."""
        excs = self.exceptions.get((user_id, day), [])
        return logic.working_spans(
            self.template.get((user_id, day.weekday()), []),
            [(e.starts, e.ends) for e in excs if e.kind == "extra_hours" and e.starts and e.ends],
            [(e.starts, e.ends) for e in excs if e.kind == "time_off" and e.starts and e.ends],
            any(e.kind == "time_off" and e.whole_day for e in excs),
        )

    def available(self, user_id: int, day: dt.date) -> list[logic.Span]:
        """When the practitioner can see patients on `day`: working, inside opening hours."""
        out = []
        for start, end in self.working(user_id, day):
            for opens, closes in self.open_on(day):
                s, e = max(start, opens), min(end, closes)
                if s < e:
                    out.append((s, e))
        return out
