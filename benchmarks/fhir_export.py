"""FHIR bulk `$export` of a clinic of 300 patients and 25,000 sessions: the time, and the rate
of resources per second.

1. Build the clinic, in bulk and from a fixed seed: PATIENTS patients (varied names, ages and
   contact details, each screened once), PRACTITIONERS practitioners with their licences, a
   manager, a front desk and ROOMS rooms; a formulary of the demo's six products, with a lot
   of each every few months over the years. Each patient has courses of the shipped protocols
   one after another over the years (about six: a protocol plans 10 to 20 sessions), together
   exactly SESSIONS weekly sessions, numbered from 1 in each course, each with its done
   appointment (no practitioner, room or patient booked twice) and 1 to 3 injections of the
   lot in date that day. Each course has the consent signed for its products, an allergy test
   read before session 1, a baseline and a measurement every fifth session and at the last;
   about 4 % of sessions have a side effect, one patient in ten an allergy, and one in fifty
   a course stopped when the allergy test showed a local reaction. The rows are written as
   the actions would write them, without their audit rows and vials, so the build takes
   seconds, not the hours charting 25,000 sessions one at a time would.
2. Request a system-level export as the manager and run it in this process, as the worker
   would (fhir/bulk.py): every type through the access layer and the R4B models, one NDJSON
   line at a time.
3. Baseline, in the same process: json.dumps of as many plain dicts of a dozen fields to an
   NDJSON file. The machines are shared and noisy; the ratio moves less than the seconds.
4. Print the counts by type, the time, the resources per second, the size of the files and
   the process's peak memory during the export over its memory at the start.
"""

from __future__ import annotations

import bisect
import datetime as dt
import gc
import json
import platform
import random
import resource
import time
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.utils import timezone

PATIENTS = 300
SESSIONS = 25_000
PRACTITIONERS = 6
ROOMS = 4
SEED = 20261208
SLOT_MINUTES = 30
FIRST_SLOT, LAST_SLOT = dt.time(9), dt.time(17)  # the last visit starts at 17:00
SIDE_EFFECT_SHARE = 0.04
ALLERGY_SHARE = 0.10
REACTION_SHARE = 0.02  # patients with a course stopped at a local reaction to the test


def _names(text: str, sep: str | None = None) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(sep))


FEMALE = _names(
    "Olivia Emma Ava Sophia Isabella Mia Amelia Harper Evelyn Abigail Emily Elizabeth Sofia "
    "Avery Ella Scarlett Grace Chloé Victoria Riley Aria Lily Aubrey Zoey Penelope Layla "
    "Nora Camila Hannah Natália Yuki Priyanka Fatima Carmen Nadia Hana Megan Linda Rachel "
    "Elena Ingrid Aisha Mei Leilani Giulia Sinéad Zainab Marisol Anouk Bianca"
)
MALE = _names(
    "Liam Noah Oliver Elijah James William Benjamin Lucas Henry Theodore Jack Levi Mateo "
    "Daniel Michael David Samuel Jamal Marcus Tyler Anthony Kenji Arjun Omar Diego Tomasz"
)
LAST = _names(
    "Smith, Johnson, Williams, Brown, Jones, Garcia, Miller, Davis, Rodriguez, Martinez, "
    "Hernández, Lopez, Gonzalez, Wilson, Anderson, Thomas, Taylor, Moore, Jackson, Martin, "
    "Lee, Perez, Thompson, White, Harris, Sanchez, Clark, Ramirez, Lewis, Robinson, Walker, "
    "Young, Allen, King, Wright, Scott, Torres, Nguyen, Hill, Flores, Green, Adams, Nelson, "
    "Baker, Hall, Rivera, Campbell, Mitchell, Carter, Roberts, O'Brien, Kowalski, Okonkwo, "
    "Goldberg, Petrova, Dubois, Washington, Iyer, Schmidt, Delgado, Tanaka, Cohen, "
    "Al-Sayed, Park, Silva, Walsh, Russo, Chen, Greene, Reyes, Vasquez, Kobayashi, Bennett, "
    "Rossi, Van der Berg, MacLeod, Ó Súilleabháin, Nakamura, Haddad, Novak, Lindqvist, "
    "Abara, Costa, Müller",
    ",",
)
STREETS = ("Atlantic Ave", "Court St", "Smith St", "5th Ave", "Prospect Pl", "Bergen St")
AREA_CODES = ("212", "347", "646", "718", "917", "929")

# Another substance than an ingredient of the formulary: (substance, reaction).
SUBSTANCES = (
    ("Penicillin", "Hives"),
    ("Latex", "Contact dermatitis"),
    ("Shellfish", "Swollen lips"),
    ("Sulfonamides", "Rash"),
    ("Nickel", "Itchy rash under jewellery"),
)
# An ingredient, given only to a patient whose courses never use it: (key, reaction).
INGREDIENT_ALLERGIES = (
    ("artichoke_extract", "Hives and wheezing with ragweed and chamomile"),
    ("lidocaine", "Palpitations and dizziness at the dentist"),
    ("caffeine", "Flushing and palpitations"),
    ("biotin", "Itchy rash"),
)
# (kind, weight, days it lasted, description)
SIDE_EFFECTS = (
    ("bruising", 40, (2, 10), "Small bruises at a few injection points."),
    ("swelling", 25, (1, 3), "Mild puffiness over the treated area, no redness or heat."),
    ("discomfort", 15, (0, 1), ""),
    ("soreness", 10, (1, 4), "Tender to the touch for a couple of days."),
    ("burning", 5, (0, 1), "Burning sensation during and just after the session."),
    ("discoloration", 4, (10, 30), "Light brown marks at some injection points."),
    ("infection", 1, (14, 40), "Tender red nodule at an injection site; swab sent."),
)
SESSION_NOTES = (
    "Tolerated well.",
    "Patient reports visible improvement.",
    "Reminded about aftercare: no sauna or gym for 48 h.",
    "Slightly more tender than last time; reduced depth.",
)


@dataclass
class PlannedCourse:
    treatment: Any
    planned: int
    done: int
    status: str
    first_day: dt.date = dt.date.min
    practitioner: int = 0
    consult_at: dt.datetime = dt.datetime.min  # set when the course is written
    reaction: bool = False  # the allergy test showed a local reaction: no session
    row: Any = None


@dataclass
class Calendar:
    """The slots taken, by (day, slot index): by practitioner, and by room."""

    by_practitioner: set[tuple[dt.date, int, int]] = field(default_factory=set)
    by_room: set[tuple[dt.date, int, int]] = field(default_factory=set)


def run(sessions: int = SESSIONS, patients: int | None = None) -> dict[str, float]:
    from mesoclinic.fhir import bulk
    from mesoclinic.fhir.models import ExportJob

    if patients is None:
        patients = max(1, round(PATIENTS * sessions / SESSIONS))
    started = time.perf_counter()
    clinic, manager, built = _build(sessions, patients, random.Random(SEED))
    build_s = time.perf_counter() - started
    ExportJob.objects.create(
        clinic=clinic,
        requested_by=manager,
        level=ExportJob.Level.SYSTEM,
        request_url="http://bench/fhir/R4B/$export",
    )
    gc.collect()
    max_rss_before = _max_rss_kb()
    rss_before = _reset_peak()
    started = time.perf_counter()
    (job,) = bulk.run_due("bench")
    seconds = time.perf_counter() - started
    if rss_before is not None:
        peak = _status_kb("VmHWM")
        growth = peak - rss_before
        memory = (
            f"peak memory {peak / 1024:.0f} MB, {growth / 1024:.0f} MB over the "
            f"{rss_before / 1024:.0f} MB at its start"
        )
    else:
        growth = _max_rss_kb() - max_rss_before
        memory = f"the peak memory (ru_maxrss) grew {growth / 1024:.0f} MB"
    assert job.status == ExportJob.Status.DONE, job.error
    assert job.clinic_id == clinic.pk, "the worker ran another benchmark's export"
    counts = {o["type"]: o["count"] for o in job.output}
    assert counts.get("Procedure") == sessions, counts
    total = sum(counts.values())
    folder = bulk.directory(job)
    size = sum(p.stat().st_size for p in folder.iterdir())
    baseline_s = _baseline(total, folder.parent / f"baseline-{job.pk}.ndjson")
    ratio = seconds / baseline_s
    print(
        f"fhir_export benchmark · {platform.machine()} · {platform.python_version()} · "
        f"{dt.date.today().isoformat()}"
    )
    print(
        f"  clinic: {patients:,} patients, {built['courses']:,} courses, {sessions:,} sessions, "
        f"{built['injections']:,} injections, {built['measurements']:,} measurements, "
        f"{built['side_effects']:,} side effects; built in {build_s:.1f} s"
    )
    for o in job.output:
        print(f"  {o['type']:<26} {o['count']:>8,}")
    print(
        f"  system $export: {total:,} resources in {seconds:.1f} s "
        f"({total / seconds:,.0f} resources/s), {size / 1e6:.1f} MB of NDJSON; {memory}"
    )
    print(
        f"  baseline, json.dumps of {total:,} plain dicts to NDJSON: {baseline_s:.2f} s; "
        f"the export took {ratio:.1f}x the baseline"
    )
    return {
        "seconds": seconds,
        "resources": total,
        "per_second": total / seconds,
        "build_seconds": build_s,
        "baseline_seconds": baseline_s,
        "baseline_ratio": ratio,
        "ndjson_mb": size / 1e6,
        "peak_growth_mb": growth / 1024,
    }


# Memory: Linux resets a process's peak RSS (VmHWM) on writing 5 to clear_refs, so the peak
# read after is the export's own. Elsewhere, the growth of ru_maxrss (0 below the build's peak).


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _reset_peak() -> int | None:
    """The RSS now in KB, with the peak reset to it; None where the peak cannot be reset."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kb("VmRSS")
    except (OSError, KeyError):
        return None


def _max_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _baseline(count: int, path: Path) -> float:
    started = time.perf_counter()
    with path.open("w", encoding="utf-8") as out:
        for n in range(count):
            out.write(
                json.dumps(
                    {
                        "resourceType": "Procedure",
                        "id": str(n),
                        "status": "completed",
                        "code": {"coding": [{"system": "urn:bench", "code": "session"}]},
                        "subject": {"reference": f"Patient/{n % PATIENTS}"},
                        "basedOn": [{"reference": f"CarePlan/{n // 14}"}],
                        "performedDateTime": "2026-12-08T10:30:00-05:00",
                        "performer": [{"actor": {"reference": "Practitioner/7"}}],
                        "bodySite": [{"coding": [{"code": "thighs", "display": "Thighs"}]}],
                        "note": [{"text": "Tolerated well."}],
                        "volume": 2.5,
                        "number": n,
                    }
                )
            )
            out.write("\n")
    seconds = time.perf_counter() - started
    path.unlink()
    return seconds


# ---------------------------------------------------------------------------------------------
# The clinic.


def _build(sessions: int, patients: int, rng: random.Random) -> tuple[Any, Any, dict[str, int]]:
    """The clinic and its manager, and the number of rows of each clinical kind written.
    Every list of rows stays in here, so none of it is held while the export runs."""
    from mesoclinic import demo
    from mesoclinic.accounts.models import Clinic, Membership, PractitionerLicence, User
    from mesoclinic.formulary.models import Ingredient, Product, ProductIngredient
    from mesoclinic.patients.actions import do_setup_clinic
    from mesoclinic.protocols.models import ClinicProtocol
    from mesoclinic.scheduling.models import Room

    now = timezone.now()
    clinic = Clinic.objects.create(
        name="FHIR export bench", timezone="America/New_York", currency="USD"
    )
    do_setup_clinic(clinic)
    protocols = {p.key: p for p in ClinicProtocol.objects.filter(clinic=clinic)}
    today = now.astimezone(clinic.tz).date()

    def staff(name: str, first: str, last: str, role: str) -> Any:
        user = User.objects.create_user(
            f"fhir-export-{name}",
            first_name=first,
            last_name=last,
            email=f"{name}@fhir-export.example.com",
        )
        Membership.objects.create(user=user, clinic=clinic, role=role)
        return user

    role, kind = Membership.Role, PractitionerLicence.Kind
    manager = staff("manager", "Elena", "Marquez", role.MANAGER)
    desk = staff("desk", "Priya", "Shah", role.FRONT_DESK)
    licences = (kind.NURSE_PRACTITIONER, kind.REGISTERED_NURSE, kind.PHYSICIAN)
    practitioners = []
    for n in range(PRACTITIONERS):
        first, last = rng.choice(FEMALE + MALE), rng.choice(LAST)
        who = staff(f"practitioner-{n}", first, last, role.PRACTITIONER)
        PractitionerLicence.objects.create(
            user=who,
            clinic=clinic,
            kind=licences[n % len(licences)],
            number=f"{licences[n % len(licences)][:2].upper()}-{rng.randint(100000, 999999)}",
            jurisdiction="New York State Education Department",
            expires_on=today + dt.timedelta(days=rng.randint(90, 900)),
            lookup_url=demo.NYSED_LOOKUP,
        )
        practitioners.append(who)
    rooms = Room.objects.bulk_create(
        Room(clinic=clinic, name=f"Room {n + 1}") for n in range(ROOMS)
    )

    products = {}
    for key, (name, supplier, vial, components) in demo.PRODUCTS.items():
        products[key] = Product.objects.create(
            clinic=clinic,
            name=name,
            supplier=supplier,
            vial=vial,
            indications=demo.INDICATIONS[key],
        )
        ProductIngredient.objects.bulk_create(
            ProductIngredient(
                product=products[key],
                ingredient=Ingredient.objects.get(clinic=None, key=ingredient),
                concentration=Decimal(concentration),
                unit=unit,
            )
            for ingredient, concentration, unit in components
        )

    people = _patients(clinic, patients, now, rng)
    plans = _plan(people, sessions, protocols, today, rng)
    earliest = min(
        (c.first_day for courses in plans for c in courses), default=today
    ) - dt.timedelta(days=30)
    lots = _lots(products, earliest, today, rng)
    built = _chart(
        clinic, people, plans, protocols, products, lots, practitioners, rooms, desk, now, rng
    )
    _allergies(people, plans, practitioners, rng)
    _screenings(clinic, people, plans, desk, rng)
    return clinic, manager, built


def _patients(clinic: Any, count: int, now: dt.datetime, rng: random.Random) -> list[Any]:
    from mesoclinic.patients.models import Patient

    made = []
    for n in range(count):
        female = rng.random() < 0.85
        first, last = rng.choice(FEMALE if female else MALE), rng.choice(LAST)
        email_name = f"{first}.{last}{n}".lower().replace("'", "").replace(" ", "")
        p = Patient(
            clinic=clinic,
            first_name=first,
            last_name=last,
            sex=Patient.Sex.FEMALE if female else Patient.Sex.MALE,
            date_of_birth=dt.date(rng.randint(1955, 2003), rng.randint(1, 12), rng.randint(1, 28)),
            phone=(
                f"+1 {rng.choice(AREA_CODES)} 555-{rng.randint(100, 199):04d}"
                if rng.random() < 0.8
                else ""
            ),
            email=(
                unicodedata.normalize("NFKD", email_name).encode("ascii", "ignore").decode()
                + "@example.com"
                if rng.random() < 0.6
                else ""
            ),
            address=(
                f"{rng.randint(1, 400)} {rng.choice(STREETS)}, Brooklyn, NY"
                if rng.random() < 0.3
                else ""
            ),
            emergency_name=(f"{rng.choice(FEMALE + MALE)} {last}" if rng.random() < 0.3 else ""),
            emergency_relation="partner",
            created_at=now,  # set to the first consultation once the courses are placed
        )
        p.refresh_search_columns()  # what save() does, and bulk_create does not
        made.append(p)
    return Patient.objects.bulk_create(made, batch_size=2000)


def _quotas(total: int, count: int, rng: random.Random) -> list[int]:
    """`total` shared among `count` patients, unevenly: some come for more courses."""
    weights = [rng.uniform(0.4, 1.6) for _ in range(count)]
    raw = [total * w / sum(weights) for w in weights]
    shares = [int(r) for r in raw]
    by_rest = sorted(range(count), key=lambda i: raw[i] - shares[i], reverse=True)
    for i in by_rest[: total - sum(shares)]:
        shares[i] += 1
    return shares


def _plan(
    people: list[Any], total: int, protocols: dict[str, Any], today: dt.date, rng: random.Random
) -> list[list[PlannedCourse]]:
    """Each patient's courses, oldest first, with their sessions together `total`: one course
    after another, most of them given in full, a few stopped early, the latest one still
    going when it has fewer sessions left than planned. Placed back from today, with months
    between courses."""
    from mesoclinic import demo

    cellulite = (demo.CELLULITE, demo.CELLULITE_HIPS)
    fat = (demo.FAT, demo.FAT_ARMS)
    facial = (demo.FACIAL, demo.FACIAL_SAGGING)
    plans = []
    for person, quota in zip(people, _quotas(total, len(people), rng), strict=True):
        # A patient comes back mostly for the same concern.
        if person.sex == "male":
            usual = rng.choice(((demo.HAIR,), fat, facial))
        else:
            usual = rng.choice((cellulite, cellulite, fat, facial, facial, (demo.HAIR,)))
        courses: list[PlannedCourse] = []
        left = quota
        while left > 0:
            t = rng.choice(usual) if rng.random() < 0.7 else rng.choice(_treatments())
            spec = protocols[t.protocol].spec
            low, high = spec.sessions.v.min, spec.sessions.v.max
            planned = rng.randint((low + high) // 2, high)
            done, status = planned, "completed"
            if rng.random() < 0.05:
                done, status = rng.randint(2, planned - 1), "stopped"
            if done >= left:
                done = left
                if done < planned:
                    status = "active"  # the latest course, still going
            courses.append(PlannedCourse(t, planned, done, status))
            left -= done
        if courses and rng.random() < REACTION_SHARE:
            t = courses[0].treatment
            spec = protocols[t.protocol].spec
            courses.insert(0, PlannedCourse(t, spec.sessions.v.min, 0, "stopped", reaction=True))
        # Back from yesterday: the latest session days ago (a week at most for a running
        # course), and two to eight months between the end of a course and the next.
        if courses and courses[-1].status == "active":
            end = today - dt.timedelta(days=rng.randint(1, 6))
        else:
            end = today - dt.timedelta(days=rng.randint(14, 240))
        for c in reversed(courses):
            first = end - dt.timedelta(days=7 * max(c.done - 1, 0))
            if first.weekday() == 6:  # closed on Sundays: the whole course a day earlier
                first -= dt.timedelta(days=1)
            c.first_day = first
            c.practitioner = rng.randrange(PRACTITIONERS)
            end = first - dt.timedelta(days=rng.randint(60, 240))
        plans.append(courses)
    return plans


def _treatments() -> tuple[Any, ...]:
    from mesoclinic import demo

    return (
        demo.CELLULITE,
        demo.CELLULITE_HIPS,
        demo.FAT,
        demo.FAT_ARMS,
        demo.FACIAL,
        demo.FACIAL_SAGGING,
        demo.HAIR,
    )


def _lots(
    products: dict[str, Any], since: dt.date, today: dt.date, rng: random.Random
) -> dict[str, tuple[list[dt.date], list[Any]]]:
    """A lot of each product every four to six months from `since`, each in date for 14 to
    22 months: by product, the days received (sorted) and the lots."""
    from mesoclinic import demo
    from mesoclinic.formulary.models import Lot

    made: dict[str, list[Any]] = {}
    for key, product in products.items():
        prefix = demo.LOTS[key][0][0].split("-")[0]
        day, n, made[key] = since, rng.randint(1000, 3000), []
        while day <= today:
            made[key].append(
                Lot(
                    product=product,
                    lot_number=f"{prefix}-{n}",
                    received_on=day,
                    expires_on=day + dt.timedelta(days=rng.randint(420, 660)),
                )
            )
            day += dt.timedelta(days=rng.randint(120, 180))
            n += rng.randint(100, 400)
    Lot.objects.bulk_create([lot for lots in made.values() for lot in lots])
    return {key: ([lot.received_on for lot in lots], lots) for key, lots in made.items()}


def _lot(lots: dict[str, tuple[list[dt.date], list[Any]]], product: str, day: dt.date) -> Any:
    """The most recently received lot of `product` by `day` (a new one comes before the last
    expires)."""
    received, made = lots[product]
    return made[bisect.bisect_right(received, day) - 1]


def _book(
    calendar: Calendar, day: dt.date, preferred: int, today: dt.date, rng: random.Random
) -> tuple[dt.date, int, int, int]:
    """A free slot on `day` (or a day either side, before today): (day, slot, practitioner,
    room), the course's own practitioner if free."""
    slots = (LAST_SLOT.hour - FIRST_SLOT.hour) * 60 // SLOT_MINUTES + 1  # 9:00 to 17:00
    for shift in (0, 1, -1, 2, -2):
        on = day + dt.timedelta(days=shift)
        if on.weekday() == 6 or on >= today:
            continue
        order = list(range(slots))
        rng.shuffle(order)
        for slot in order:
            for who in (preferred, *range(PRACTITIONERS)):
                if (on, slot, who) in calendar.by_practitioner:
                    continue
                room = next(
                    (r for r in range(ROOMS) if (on, slot, r) not in calendar.by_room), None
                )
                if room is None:
                    break
                calendar.by_practitioner.add((on, slot, who))
                calendar.by_room.add((on, slot, room))
                return on, slot, who, room
    raise AssertionError(f"no free slot around {day}")


def _chart(
    clinic: Any,
    people: list[Any],
    plans: list[list[PlannedCourse]],
    protocols: dict[str, Any],
    products: dict[str, Any],
    lots: dict[str, tuple[list[dt.date], list[Any]]],
    practitioners: list[Any],
    rooms: list[Any],
    desk: Any,
    now: dt.datetime,
    rng: random.Random,
) -> dict[str, int]:
    """Courses with their consents, allergy tests, sessions, appointments, injections,
    measurements and side effects."""
    from mesoclinic import demo
    from mesoclinic.courses import logic as course_logic
    from mesoclinic.courses.models import (
        AllergyReading,
        AllergyTest,
        AllergyTestInjection,
        Course,
        Session,
        SessionInjection,
        SideEffect,
    )
    from mesoclinic.formulary.models import TEST_DOSE_ML
    from mesoclinic.outcomes import demo as outcomes_demo
    from mesoclinic.outcomes import logic as outcome_logic
    from mesoclinic.outcomes.models import Measurement
    from mesoclinic.patients import consent as consent_text
    from mesoclinic.patients.models import Consent, Patient, sha256
    from mesoclinic.scheduling.models import Appointment

    tz = clinic.tz
    today = now.astimezone(tz).date()
    specs = {key: p.spec for key, p in protocols.items()}

    def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=tz)

    # Courses, planned at a consultation a week or two before session 1, where the patient
    # signed the consent.
    rows = []
    for person, courses in zip(people, plans, strict=True):
        for c in courses:
            t = c.treatment
            consult = at(
                c.first_day - dt.timedelta(days=rng.randint(8, 14)),
                rng.randint(9, 16),
                rng.choice((0, 30)),
            )
            c.consult_at = consult
            c.row = Course(
                clinic=clinic,
                patient=person,
                protocol=protocols[t.protocol],
                indication=t.indication,
                areas=list(t.areas),
                cadence_days=7,
                planned_sessions=c.planned,
                first_session_on=c.first_day,
                status=c.status,
                stop_reason=(
                    "Local reaction to the allergy test: the course was not started."
                    if c.reaction
                    else "Stopped at the patient's request."
                    if c.status == "stopped"
                    else ""
                ),
                created_by=desk,
                created_at=consult + dt.timedelta(minutes=50),
            )
            rows.append(c.row)
        if courses:
            person.created_at = courses[0].consult_at - dt.timedelta(days=rng.randint(2, 9))
    Patient.objects.bulk_update(people, ["created_at"], batch_size=2000)
    Course.objects.bulk_create(rows, batch_size=2000)
    every = [c for courses in plans for c in courses]
    Course.products.through.objects.bulk_create(
        (
            Course.products.through(course_id=c.row.pk, product_id=products[k].pk)
            for c in every
            for k in c.treatment.products
        ),
        batch_size=2000,
    )
    template = consent_text.current_template(clinic)
    texts: dict[Any, tuple[str, str]] = {}
    consents = []
    for c in every:
        t = c.treatment
        if t not in texts:
            text = consent_text.render(
                template, [products[k] for k in t.products], t.indication, list(t.areas)
            )
            texts[t] = (text, sha256(text))
        text, digest = texts[t]
        p = c.row.patient
        consents.append(
            Consent(
                patient=p,
                template=template,
                indication=t.indication,
                areas=list(t.areas),
                text=text,
                text_sha256=digest,
                signed_name=f"{p.first_name} {p.last_name}",
                signed_at=c.consult_at + dt.timedelta(minutes=40),
                method=rng.choice(("typed", "typed", "drawn", "paper")),
                witnessed_by=practitioners[c.practitioner],
                recorded_at=c.consult_at + dt.timedelta(minutes=41),
            )
        )
    Consent.objects.bulk_create(consents, batch_size=2000)
    Consent.products.through.objects.bulk_create(
        (
            Consent.products.through(consent_id=consent.pk, product_id=products[k].pk)
            for consent, c in zip(consents, every, strict=True)
            for k in c.treatment.products
        ),
        batch_size=2000,
    )

    # The allergy test three days before session 1, read the next day: two injections, of the
    # main product and the last adjunct (seed 004).
    tests = []
    for c in every:
        tests.append(
            AllergyTest(
                course=c.row,
                given_at=at(c.first_day - dt.timedelta(days=3), 10, 30),
                given_by=practitioners[c.practitioner],
            )
        )
    AllergyTest.objects.bulk_create(tests, batch_size=2000)
    test_injections, readings = [], []
    for test, c in zip(tests, every, strict=True):
        day = c.first_day - dt.timedelta(days=3)
        main, last = c.treatment.products[0], c.treatment.products[-1]
        for key, site in ((main, "left inner forearm"), (last, "right inner forearm")):
            test_injections.append(
                AllergyTestInjection(
                    test=test,
                    lot=_lot(lots, key, day),
                    volume_ml=TEST_DOSE_ML,
                    site=site,
                    given_at=test.given_at,
                    given_by=test.given_by,
                )
            )
        readings.append(
            AllergyReading(
                test=test,
                read_at=test.given_at + dt.timedelta(hours=25),
                read_by=test.given_by,
                result="local" if c.reaction else "none",
                notes=(
                    "Red wheal of 12 mm at the left forearm site, itchy; right site clear."
                    if c.reaction
                    else "Both sites clear: no redness, wheal or itching."
                ),
            )
        )
    AllergyTestInjection.objects.bulk_create(test_injections, batch_size=2000)
    AllergyReading.objects.bulk_create(readings, batch_size=2000)

    # The sessions, weekly from session 1 at a free slot, each with its visit.
    calendar = Calendar()
    sessions, visits, placed = [], [], []
    for c in every:
        for n in range(1, c.done + 1):
            day, slot, who, room = _book(
                calendar,
                c.first_day + dt.timedelta(days=7 * (n - 1)),
                c.practitioner,
                today,
                rng,
            )
            start = at(day, FIRST_SLOT.hour) + dt.timedelta(minutes=slot * SLOT_MINUTES)
            lidocaine = "lidocaine" in c.treatment.products
            sessions.append(
                Session(
                    course=c.row,
                    number=n,
                    performed_at=start,
                    practitioner=practitioners[who],
                    numbing_cream=not lidocaine or rng.random() < 0.5,
                    stimulants_avoided=True,
                    burning_minutes=rng.choice((None, 10, 15, 20)),
                    discomfort_minutes=rng.choice((None, 10, 15)),
                    notes=rng.choice(SESSION_NOTES) if rng.random() < 0.15 else "",
                    created_at=start + dt.timedelta(minutes=SLOT_MINUTES),
                )
            )
            visits.append((c, room, start))
            placed.append(c)
    Session.objects.bulk_create(sessions, batch_size=2000)
    Appointment.objects.bulk_create(
        (
            Appointment(
                clinic=clinic,
                patient=c.row.patient,
                course=c.row,
                kind=Appointment.Kind.SESSION,
                practitioner=s.practitioner,
                room=rooms[room],
                starts_at=start,
                # From the instant: a wall-clock half hour is not one on a DST change day.
                ends_at=start.astimezone(dt.UTC) + dt.timedelta(minutes=SLOT_MINUTES),
                status=Appointment.Status.DONE,
                arrived_at=start - dt.timedelta(minutes=rng.randint(0, 10)),
                arrived_by=desk,
                session=s,
                created_by=desk,
                created_at=c.row.created_at,
            )
            for s, (c, room, start) in zip(sessions, visits, strict=True)
        ),
        batch_size=2000,
    )

    # Injections as the demo charts them: the main product into each area, each adjunct
    # (lidocaine, the homeopathic complex) once, left out one visit in four where there is
    # one area; the lot in date that day.
    injections = []
    for s, c in zip(sessions, placed, strict=True):
        t = c.treatment
        day = s.performed_at.astimezone(tz).date()
        main, *adjuncts = t.products
        for area in t.areas:
            low, high = demo.VOLUME_ML.get(area, (2.0, 5.0))
            injections.append(
                SessionInjection(
                    session=s,
                    area=area,
                    lot=_lot(lots, main, day),
                    volume_ml=Decimal(str(low + 0.5 * rng.randint(0, int((high - low) / 0.5)))),
                    technique=rng.choice(demo.TECHNIQUES.get(area, ("point", "nappage", "linear"))),
                )
            )
        if len(t.areas) == 1 and rng.random() < 0.25:
            adjuncts = []
        for key in adjuncts:
            injections.append(
                SessionInjection(
                    session=s,
                    area=t.areas[0],
                    lot=_lot(lots, key, day),
                    volume_ml=Decimal(rng.choice(("0.5", "1.0"))),
                    technique=SessionInjection.Technique.POINT,
                )
            )
    SessionInjection.objects.bulk_create(injections, batch_size=2000)

    # Measurements as the demo takes them: a baseline at the allergy test, then at every
    # fifth session and the latest one (with GAIS and satisfaction there), each reading
    # passed through outcomes.logic.check as do_record_measurements does.
    of_course: dict[int, list[Any]] = {}
    for s, c in zip(sessions, placed, strict=True):
        of_course.setdefault(id(c), []).append(s)
    measurements = []
    for number, c in enumerate(every):
        done = of_course.get(id(c), [])
        if not done:
            continue
        facts = outcome_logic.CourseFacts(
            areas=tuple(c.row.areas),
            created_on=c.row.created_at.astimezone(tz).date(),
            tz=tz,
            sessions_at=tuple(s.performed_at for s in done),
            now=now,
        )
        visits_of: list[tuple[dt.datetime, Any, float]] = [
            (at(c.first_day - dt.timedelta(days=3), 10, 45), None, 0.0)
        ]
        for s in done:
            if s.number % 5 == 0 or s is done[-1]:
                visits_of.append((s.performed_at, s, min(1.0, s.number / c.planned)))
        for taken_at, s, share in visits_of:
            raws = outcomes_demo._visit(c.row, random.Random(SEED + number), share)
            if s is None and c.row.indication not in ("cellulite", "localized_fat"):
                raws.append(("", outcome_logic.Raw("satisfaction", rng.randint(3, 6))))
            if s is done[-1]:
                raws.append(("", outcome_logic.Raw("gais", rng.choice((2, 3, 3, 4)))))
                raws.append(("", outcome_logic.Raw("satisfaction", rng.randint(5, 9))))
            for clean in outcome_logic.check_all(raws, taken_at, facts):
                measurements.append(
                    Measurement(
                        clinic=clinic,
                        course=c.row,
                        session=s,
                        kind=clean.kind,
                        site=clean.site,
                        area=clean.area,
                        value=clean.value,
                        unit=clean.unit,
                        items=clean.items,
                        loinc=clean.loinc,
                        taken_at=taken_at,
                        recorded_by=s.practitioner if s else practitioners[c.practitioner],
                        recorded_at=taken_at + dt.timedelta(minutes=10),
                    )
                )
    Measurement.objects.bulk_create(measurements, batch_size=2000)

    # Side effects after about 4 % of sessions, mostly mild bruising or swelling that passed
    # in days; the status from the protocol, as SideEffect.refresh_status derives it.
    kinds = [k for k, weight, _, _ in SIDE_EFFECTS for _ in range(weight)]
    details = {k: (lasted, text) for k, _, lasted, text in SIDE_EFFECTS}
    effects = []
    for s, c in zip(sessions, placed, strict=True):
        if rng.random() >= SIDE_EFFECT_SHARE:
            continue
        k = rng.choice(kinds)
        grade = 2 if k == "infection" or rng.random() < 0.08 else 1
        onset = s.performed_at + dt.timedelta(hours=rng.randint(0, 30))
        low, high = details[k][0]
        lasted = dt.timedelta(days=rng.randint(low, high), hours=rng.randint(1, 12))
        resolved = onset + lasted if onset + lasted <= now else None  # still going today
        spec = specs[c.treatment.protocol]
        status, until = course_logic.side_effect_status(
            spec.side_effect(k), grade, onset, resolved, now, spec.urgent_from_grade.v
        )
        effects.append(
            SideEffect(
                session=s,
                kind=k,
                description=details[k][1],
                onset_at=onset,
                resolved_at=resolved,
                grade=grade,
                status=status,
                expected_until=until,
                reported_by=s.practitioner,
                reported_at=min(onset + dt.timedelta(hours=20), now),
            )
        )
    SideEffect.objects.bulk_create(effects, batch_size=2000)
    return {
        "courses": len(every),
        "injections": len(injections),
        "measurements": len(measurements),
        "side_effects": len(effects),
    }


def _allergies(
    people: list[Any], plans: list[list[PlannedCourse]], practitioners: list[Any], rng: Any
) -> None:
    """One patient in ten reported an allergy at registration: mostly to another substance,
    one in four to an ingredient none of their courses uses."""
    from mesoclinic import demo
    from mesoclinic.formulary.models import Ingredient
    from mesoclinic.patients.models import Allergy

    ingredients = {i.key: i for i in Ingredient.objects.filter(clinic=None)}
    used_by_product = {
        key: {ingredient for ingredient, _, _ in components}
        for key, (_, _, _, components) in demo.PRODUCTS.items()
    }
    made = []
    for person, courses in zip(people, plans, strict=True):
        if rng.random() >= ALLERGY_SHARE:
            continue
        used = {i for c in courses for key in c.treatment.products for i in used_by_product[key]}
        free = [(k, r) for k, r in INGREDIENT_ALLERGIES if k not in used and k in ingredients]
        row = Allergy(
            patient=person,
            recorded_at=person.created_at,
            recorded_by=rng.choice(practitioners),
            noticed=rng.choice(("as a child", "a few years ago", "2019", "")),
        )
        if free and rng.random() < 0.25:
            key, row.reaction = rng.choice(free)
            row.ingredient = ingredients[key]
        else:
            row.substance, row.reaction = rng.choice(SUBSTANCES)
        made.append(row)
    Allergy.objects.bulk_create(made)


def _screenings(
    clinic: Any, people: list[Any], plans: list[list[PlannedCourse]], desk: Any, rng: Any
) -> None:
    """Each patient screened at the first consultation: mostly eligible, some with caution."""
    from mesoclinic.patients.models import Screening, ScreeningForm
    from mesoclinic.patients.screening import score

    form = ScreeningForm.current(clinic)
    keys = [q["key"] for q in form.questions]
    cautions = [
        k
        for k in ("anticoagulants_or_bleeding_disorder", "keloid_history", "autoimmune_disease")
        if k in keys
    ]
    made = []
    for person, courses in zip(people, plans, strict=True):
        if not courses:
            continue
        said_yes = {rng.choice(cautions)} if cautions and rng.random() < 0.1 else set()
        answers = {k: k in said_yes for k in keys}
        at = courses[0].consult_at
        outcome = score(
            form.document, answers, person.date_of_birth, at.astimezone(clinic.tz).date()
        )
        made.append(
            Screening(
                patient=person,
                form=form,
                answers=answers,
                result=outcome.result,
                reasons=outcome.reasons,
                screened_at=at,
                screened_by=desk,
            )
        )
    Screening.objects.bulk_create(made)
