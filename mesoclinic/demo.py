"""The demo clinic: a New York clinic with staff, a formulary and thirty patients.

`load()` builds it once, in one transaction, through the same actions the API uses
(do_screen_patient, do_sign_consent, do_plan_course, do_give_allergy_test,
do_read_allergy_test, do_record_session, do_report_side_effect), so every safety gate is
checked on the way: sessions charted in the past come after their screening, consent and a
read allergy test, at intervals the protocol allows, with lots in date on the day. Dates are
relative to today; everything else comes from a seeded random.Random, so two loads differ only
by "now". A few "recorded at" timestamps are moved back to the day the thing happened (the
actions stamp them with the time of the call), so the charts read in order.

Staff (password "demo" for everyone):
    manager        clinic manager, physician, Django admin staff
    practitioner   nurse practitioner
    frontdesk      front desk
    practitioner2  registered nurse whose licence has EXPIRED: the clinic refuses every session
                   they chart (one refused attempt today is in the audit trail)

The patient portal (/my/): Megan O'Brien, mid-course, signs in as megan.obrien@example.com
with the same password.

Formulary: a lipolytic mix, a cellulite mix, a vitamin C facial cocktail, a biotin hair
cocktail, lidocaine 1 % and a homeopathic complex. One lot is expired, one expires within 30
days, and one cellulite lot is recalled after three current patients received it.

The cast of patients, by where they are in the journey:
    registered only                         Olivia Bennett, Marcus Thompson, Hana Kobayashi
    screened, eligible                      Sofia Hernández, Daniel Kowalski
    screened, eligible with caution         Grace Okonkwo (anticoagulants),
                                            Rachel Goldberg (keloid scars)
    screened, not eligible (hard stop)      Emily Nguyen (pregnant), Tyler Brooks (isotretinoin)
    consented, course planned, no test yet  Isabella Rossi (cellulite), Nadia Petrova (facial)
    allergy test given, waiting 24 h        Chloé Dubois (3 h ago), Jamal Washington (20 h ago)
    allergy test read, no reaction          Priyanka Iyer (starts tomorrow),
                                            Laura Schmidt (starts in 2 days)
    allergy test read, local reaction       Ava Martinez: every session is refused
    mid-course, one per protocol            Megan O'Brien (cellulite), Carmen Delgado (fat),
                                            Yuki Tanaka (facial), David Cohen (hair)
    allergic to an ingredient               Fatima Al-Sayed: artichoke extract (Asteraceae), so
                                            the lipolytic mix is refused for her
    side effects                            Jessica Park: swelling 2 days on, still expected;
                                            Brianna Mitchell: bruising 10 days on, BEYOND
                                            expected, routine follow-up open;
                                            Natália Silva: suspected mycobacterial infection,
                                            URGENT follow-up open (she had the recalled lot)
    course completed, maintenance due       Catherine Walsh (cellulite), Michael Russo (fat),
                                            Linda Chen (facial), Anthony Greene (hair): last
                                            session 6 to 8 months ago
    back for maintenance                    Samantha Reyes: one maintenance session last week
    course stopped                          Elena Vasquez: moved away after 5 of 12 sessions
"""

from __future__ import annotations

import datetime as dt
import random
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import partial
from typing import Any

from django.db import models, transaction
from django.db.models import Max
from django.utils import timezone

from mesoclinic.accounts.models import (
    AuditEvent,
    Clinic,
    Membership,
    PractitionerLicence,
    User,
    audit,
)
from mesoclinic.courses.actions import (
    InjectionInput,
    TestInjection,
    do_give_allergy_test,
    do_plan_course,
    do_read_allergy_test,
    do_record_session,
    do_report_side_effect,
    do_stop_course,
    do_sweep_side_effects,
)
from mesoclinic.courses.models import (
    AllergyTest,
    Course,
    Session,
    SessionInjection,
    SessionRefused,
    SideEffect,
)
from mesoclinic.formulary import stock
from mesoclinic.formulary.models import Ingredient, Lot, Product, ProductIngredient, Vial
from mesoclinic.outcomes import demo as outcomes_demo
from mesoclinic.outcomes import photo_demo
from mesoclinic.patients.actions import do_screen_patient, do_setup_clinic, do_sign_consent
from mesoclinic.patients.models import Allergy, Consent, Patient, ScreeningForm
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.safety import demo as safety_demo
from mesoclinic.safety import surveil_demo
from mesoclinic.scheduling.actions import BookingRefused, do_cancel
from mesoclinic.scheduling.models import (
    Appointment,
    Holiday,
    OpeningHours,
    Room,
    WorkingException,
    WorkingHours,
)
from mesoclinic.scheduling.planning import do_book_course

CLINIC_NAME = "Demo Mesotherapy Clinic"
PASSWORD = "demo"
SEED = 20240611
VIA = "command"

LOGINS = (
    ("manager", "Clinic manager (can also use the Django admin)"),
    ("practitioner", "Practitioner"),
    ("frontdesk", "Front desk"),
)
# The one patient with a portal login: a patient signs in with their email address.
PORTAL_PATIENT = ("Megan", "O'Brien")
PORTAL_LOGIN = "megan.obrien@example.com"


# ---------------------------------------------------------------------------------------------
# The loader's state: the clinic, its staff, formulary, the clock and the random source.


@dataclass
class Staff:
    manager: User
    practitioner: User
    frontdesk: User
    practitioner2: User


@dataclass
class Demo:
    clinic: Clinic
    staff: Staff
    now: dt.datetime
    rng: random.Random
    products: dict[str, Product] = field(default_factory=dict)
    lots: dict[str, list[Lot]] = field(default_factory=dict)

    @property
    def today(self) -> dt.date:
        return self.now.astimezone(self.clinic.tz).date()

    def day(self, days_from_today: int) -> dt.date:
        return self.today + dt.timedelta(days=days_from_today)

    def at(self, day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
        """A wall-clock time in the clinic's time zone."""
        return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=self.clinic.tz)

    def slot(self, day: dt.date) -> dt.datetime:
        """A random appointment time on `day`, during opening hours."""
        return self.at(day, self.rng.randint(9, 17), self.rng.choice((0, 15, 30, 45)))


def _backdate(obj: models.Model, **fields: dt.datetime) -> None:
    """Move a "recorded at" timestamp back to when the thing happened. The actions stamp it
    with the time of the call; the demo charts months of history in one go."""
    type(obj)._default_manager.filter(pk=obj.pk).update(**fields)
    for name, value in fields.items():
        setattr(obj, name, value)


# ---------------------------------------------------------------------------------------------
# Clinic, staff and formulary.


def _user(username: str, first: str, last: str, *, is_staff: bool = False) -> User:
    user, _ = User.objects.get_or_create(username=username)
    user.first_name, user.last_name = first, last
    user.email = f"{username}@demo-clinic.example.com"
    user.is_staff = is_staff
    user.set_password(PASSWORD)
    user.save()
    return user


NYSED_LOOKUP = "https://eservices.nysed.gov/professions/verification-search"


def _member(
    clinic: Clinic, user: User, role: str, licence: tuple[str, str, dt.date] | None
) -> None:
    Membership.objects.create(user=user, clinic=clinic, role=role)
    if licence is not None:
        kind, number, expires_on = licence
        PractitionerLicence.objects.create(
            user=user,
            clinic=clinic,
            kind=kind,
            number=number,
            jurisdiction="New York State Education Department",
            expires_on=expires_on,
            # The board's own search, which the public site links to.
            lookup_url=NYSED_LOOKUP,
        )


def _create_staff(clinic: Clinic, today: dt.date) -> Staff:
    kind = PractitionerLicence.Kind
    role = Membership.Role
    staff = Staff(
        manager=_user("manager", "Elena", "Marquez", is_staff=True),
        practitioner=_user("practitioner", "Samuel", "Okafor"),
        frontdesk=_user("frontdesk", "Priya", "Shah"),
        practitioner2=_user("practitioner2", "Jordan", "Lee"),
    )
    in_two_years = today + dt.timedelta(days=730)
    _member(clinic, staff.manager, role.MANAGER, (kind.PHYSICIAN, "MD-284113", in_two_years))
    _member(
        clinic,
        staff.practitioner,
        role.PRACTITIONER,
        (kind.NURSE_PRACTITIONER, "NP-F372904", today + dt.timedelta(days=400)),
    )
    _member(clinic, staff.frontdesk, role.FRONT_DESK, None)
    _member(
        clinic,
        staff.practitioner2,
        role.PRACTITIONER,
        (kind.REGISTERED_NURSE, "RN-651207", today - dt.timedelta(days=45)),
    )
    return staff


# key: (name, supplier, vial, [(ingredient key, concentration, unit)])
PRODUCTS: dict[str, tuple[str, str, str, list[tuple[str, str, str]]]] = {
    "lipolytic": (
        "Lipolytic mix (PC + L-carnitine + artichoke)",
        "Meso Compounding Pharmacy, Brooklyn",
        Product.Vial.SINGLE_DOSE,
        [
            ("phosphatidylcholine", "50", "mg/mL"),
            ("l_carnitine", "200", "mg/mL"),
            ("artichoke_extract", "5", "mg/mL"),
        ],
    ),
    "cellulite": (
        "Cellulite mix (caffeine + aminophylline)",
        "Meso Compounding Pharmacy, Brooklyn",
        Product.Vial.SINGLE_DOSE,
        [("caffeine", "20", "mg/mL"), ("aminophylline", "25", "mg/mL")],
    ),
    "vitamin_c": (
        "Vitamin C + dexpanthenol facial cocktail",
        "Dermal Supply Co.",
        Product.Vial.SINGLE_DOSE,
        [("ascorbic_acid", "100", "mg/mL"), ("dexpanthenol", "50", "mg/mL")],
    ),
    "biotin": (
        "Biotin hair cocktail (biotin + dexpanthenol + ginkgo)",
        "Dermal Supply Co.",
        Product.Vial.SINGLE_DOSE,
        [
            ("biotin", "5", "mg/mL"),
            ("dexpanthenol", "25", "mg/mL"),
            ("ginkgo_extract", "2", "mg/mL"),
        ],
    ),
    "lidocaine": (
        "Lidocaine 1% (multi-dose vial)",
        "Hospira",
        Product.Vial.MULTI_DOSE,
        [("lidocaine", "10", "mg/mL")],
    ),
    "homeopathic": (
        "Homeopathic drainage complex",
        "HomeoLab Europe",
        Product.Vial.SINGLE_DOSE,
        [("homeopathic_complex", "1", "mL/ampoule")],
    ),
}

# product key: [(lot number, received days ago, expires in days)]. A session uses the most
# recently received lot that is in date on its day, so each old lot covers the older history.
LOTS: dict[str, list[tuple[str, int, int]]] = {
    "lipolytic": [("LPM-3187", 400, -20), ("LPM-4402", 60, 400)],  # LPM-3187 has expired
    "cellulite": [("CMX-2290", 420, 150), ("CMX-2871", 120, 500), ("CMX-3015", 10, 700)],
    "vitamin_c": [("VCD-1146", 380, 18), ("VCD-1530", 15, 540)],  # VCD-1146 expires soon
    "biotin": [("BHC-0782", 400, 300)],
    "lidocaine": [("LD1-55013", 420, 120), ("LD1-57720", 30, 700)],
    "homeopathic": [("HDC-9034", 400, 250)],
}
RECALLED_LOT = "CMX-2871"
# Vials in each delivery of a lot, for each copy of the cast.
VIALS_RECEIVED = 60
# What one vial of each product cost the demo clinic, in its currency: the stock's value.
VIAL_COSTS: dict[str, str] = {
    "lipolytic": "38.50",
    "cellulite": "24.00",
    "vitamin_c": "16.75",
    "biotin": "12.40",
    "lidocaine": "4.20",
    "homeopathic": "9.90",
}
RECALL_REASON = (
    "Supplier recall notice: sterility of the batch cannot be assured "
    "(possible non-tuberculous mycobacterial contamination)."
)


# product key: the indications the formulary lists it for (none: any, e.g. the anaesthetic).
INDICATIONS: dict[str, list[str]] = {
    "lipolytic": ["localized_fat"],
    "cellulite": ["cellulite"],
    "vitamin_c": ["wrinkles", "sagging_skin"],
    "biotin": ["hair_loss"],
    "lidocaine": [],
    "homeopathic": ["wrinkles", "sagging_skin"],
}


def _create_formulary(d: Demo, scale: int) -> None:
    for key, (name, supplier, vial, components) in PRODUCTS.items():
        product = Product.objects.create(
            clinic=d.clinic, name=name, supplier=supplier, vial=vial, indications=INDICATIONS[key]
        )
        for ingredient, concentration, unit in components:
            ProductIngredient.objects.create(
                product=product,
                ingredient=Ingredient.objects.get(clinic=None, key=ingredient),
                concentration=Decimal(concentration),
                unit=unit,
            )
        d.products[key] = product
        d.lots[key] = [
            Lot.objects.create(
                product=product,
                lot_number=number,
                received_on=d.day(-received_days_ago),
                expires_on=d.day(expires_in),
            )
            for number, received_days_ago, expires_in in LOTS[key]
        ]
        # Each lot came in as a delivery of vials: what charting then draws down.
        for lot in d.lots[key]:
            when = dt.datetime.combine(lot.received_on, dt.time(9), tzinfo=d.clinic.tz)
            stock.receive(
                lot,
                VIALS_RECEIVED * scale,
                user=d.staff.manager,
                at=when,
                vial_cost=Decimal(VIAL_COSTS[key]),
            )


# The demo clinic's price list: (kind, name, amount before tax, tax rate %).
PRICES = [
    ("consultation", "Consultation", "80", "0"),
    ("allergy_test", "Allergy test", "45", "0"),
    ("session", "Session, one area", "500", "0"),
    ("maintenance", "Maintenance session", "450", "0"),
    ("review", "Review of results", "60", "0"),
    ("fee", "Late cancellation fee", "50", "0"),
    ("fee", "No-show fee", "75", "0"),
]


def _money(d: Demo) -> None:
    """The price list, and for the first patients with sessions an invoice of the sessions
    given, paid in full, in part or not at all, so the money pages have something to show."""
    from mesoclinic.billing import actions as billing
    from mesoclinic.billing.models import PriceItem

    items = {
        name: PriceItem.objects.create(
            clinic=d.clinic, kind=kind, name=name, amount=Decimal(amount), tax_rate=Decimal(tax)
        )
        for kind, name, amount, tax in PRICES
    }
    patients = (
        Patient.objects.filter(clinic=d.clinic, courses__sessions__isnull=False)
        .distinct()
        .order_by("last_name", "first_name")[:3]
    )
    for n, patient in enumerate(patients):
        given = Session.objects.filter(course__patient=patient).count()
        lines = [
            billing.LineInput.of(items["Allergy test"]),
            billing.LineInput.of(items["Session, one area"], given),
        ]
        invoice = billing.issue_invoice(patient, lines, user=d.staff.frontdesk)
        if n == 0:
            billing.record_payment(
                invoice,
                invoice.total,
                "card_terminal",
                user=d.staff.frontdesk,
                reference="TRM-10421",
            )
        elif n == 1:
            billing.record_payment(invoice, Decimal("500"), "cash", user=d.staff.frontdesk)
    _quotes(d)


def _quotes(d: Demo) -> None:
    """The payment policy (a 20 % deposit, a late-cancellation and a no-show fee), and for the
    first planned courses a quote: one accepted in the clinic with its deposit paid, one
    waiting for the patient."""
    from mesoclinic.billing import actions as billing
    from mesoclinic.billing import quotes
    from mesoclinic.billing.policy import policy_for

    policy = policy_for(d.clinic)
    policy.deposit_percent = Decimal("20")
    policy.late_cancel_fee = Decimal("50")
    policy.no_show_fee = Decimal("100")
    policy.save()
    planned = Course.objects.filter(clinic=d.clinic, status="planned", packages__isnull=True)
    for n, course in enumerate(planned.select_related("patient", "protocol")[:2]):
        quote = quotes.issue(
            course,
            kind="package",
            user=d.staff.frontdesk,
            package_price=Decimal(450 * course.planned_sessions),
        )
        if n == 0:
            accepted = quotes.accept(
                quote,
                signed_name=f"{course.patient.first_name} {course.patient.last_name}",
                signature="",
                text_sha256=quote.text_sha256,
                user=d.staff.frontdesk,
                accepted_in="clinic",
            )
            assert accepted.package is not None
            billing.record_payment(
                accepted.package.invoice,
                accepted.deposit,
                "card_terminal",
                user=d.staff.frontdesk,
                reference="TRM-10488",
            )


def _tidy_vials(d: Demo) -> None:
    """Close the vials a clinic would have closed by now: each single-dose vial after its
    visit, used up; each multi-dose vial at its beyond-use time, thrown away; and of a lot's
    multi-dose vials still in their time, all but the newest, used up at their last draw.
    (The cast is charted one patient at a time, not in time order, so it opens more.)"""
    now = timezone.now()
    vials = Vial.objects.filter(lot__product__clinic=d.clinic, closed_at__isnull=True)
    newest: dict[int, Vial] = {}
    for vial in vials.annotate(last=Max("movements__at")).order_by("opened_at"):
        if vial.single_dose:
            reason, at = Vial.Closed.USED_UP, vial.opened_at + dt.timedelta(hours=1)
        elif vial.beyond_use_at is not None and vial.beyond_use_at <= now:
            reason, at = Vial.Closed.BEYOND_USE, vial.beyond_use_at
        else:
            older = newest.get(vial.lot_id)
            newest[vial.lot_id] = vial
            if older is None:
                continue
            vial, reason, at = older, Vial.Closed.USED_UP, older.last  # type: ignore[attr-defined,assignment]
        stock.close_vial(vial, reason, user=d.staff.practitioner, at=at)


def _lot(d: Demo, product: str, day: dt.date) -> Lot:
    usable = [
        lot
        for lot in d.lots[product]
        if lot.received_on <= day <= lot.expires_on and not lot.recalled
    ]
    return max(usable, key=lambda lot: lot.received_on)


def _recall(d: Demo) -> None:
    lot = next(lot for lots in d.lots.values() for lot in lots if lot.lot_number == RECALLED_LOT)
    with transaction.atomic():
        lot.do_recall(RECALL_REASON, d.staff.manager)
        audit(
            clinic=d.clinic,
            user=d.staff.manager,
            action=AuditEvent.Action.UPDATE,
            obj=lot,
            via=VIA,
            recalled=True,
            reason=RECALL_REASON,
        )


# ---------------------------------------------------------------------------------------------
# Treatments: what a course treats and injects.


@dataclass(frozen=True)
class Treatment:
    protocol: str
    indication: str
    areas: tuple[str, ...]
    products: tuple[str, ...]  # the first is injected into every area, the others once


CELLULITE = Treatment("cellulite", "cellulite", ("thighs", "buttocks"), ("cellulite", "lidocaine"))
CELLULITE_HIPS = Treatment("cellulite", "cellulite", ("hips", "thighs"), ("cellulite", "lidocaine"))
FAT = Treatment("localized_fat", "localized_fat", ("abdomen", "hips"), ("lipolytic", "lidocaine"))
FAT_ARMS = Treatment("localized_fat", "localized_fat", ("arms",), ("lipolytic", "lidocaine"))
FACIAL = Treatment("facial_rejuvenation", "wrinkles", ("face",), ("vitamin_c", "homeopathic"))
FACIAL_SAGGING = Treatment(
    "facial_rejuvenation", "sagging_skin", ("face", "chin"), ("vitamin_c", "homeopathic")
)
HAIR = Treatment("hair_loss", "hair_loss", ("scalp",), ("biotin", "lidocaine"))

VOLUME_ML = {"face": (1.0, 2.0), "chin": (0.5, 1.0), "scalp": (2.0, 4.0)}  # body: 2 to 5 mL
TECHNIQUES = {
    "face": ("papule", "nappage"),
    "chin": ("point",),
    "scalp": ("nappage",),
}  # body: point, nappage, linear


def _volume(d: Demo, low: float, high: float) -> Decimal:
    steps = int((high - low) / 0.5)
    return Decimal(str(low + 0.5 * d.rng.randint(0, steps)))


def _injections(d: Demo, t: Treatment, day: dt.date) -> list[InjectionInput]:
    main, *adjuncts = t.products
    out = [
        InjectionInput(
            area=area,
            lot=_lot(d, main, day),
            volume_ml=_volume(d, *VOLUME_ML.get(area, (2.0, 5.0))),
            technique=d.rng.choice(TECHNIQUES.get(area, ("point", "nappage", "linear"))),
        )
        for area in t.areas
    ]
    for adjunct in adjuncts:
        out.append(
            InjectionInput(
                area=t.areas[0],
                lot=_lot(d, adjunct, day),
                volume_ml=_volume(d, 0.5, 1.0),
                technique=SessionInjection.Technique.POINT,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# The steps of a patient's journey, each through the clinic's own actions.


@dataclass(frozen=True)
class Person:
    first: str
    last: str
    sex: str


AREA_CODES = ("212", "347", "646", "718", "917", "929")


def _email(p: Person) -> str:
    name = f"{p.first}.{p.last}".lower().replace("'", "").replace(" ", "")
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return f"{ascii_name}@example.com"


def _register(d: Demo, p: Person, at: dt.datetime) -> Patient:
    rng = d.rng
    patient = Patient.objects.create(
        clinic=d.clinic,
        first_name=p.first,
        last_name=p.last,
        sex=p.sex,
        date_of_birth=dt.date(rng.randint(1962, 2001), rng.randint(1, 12), rng.randint(1, 28)),
        phone=f"+1 {rng.choice(AREA_CODES)} 555-{rng.randint(100, 199):04d}",
        email="" if rng.random() < 0.1 else _email(p),
    )
    _backdate(patient, created_at=at)
    return patient


def _screen(d: Demo, patient: Patient, at: dt.datetime, yes: Iterable[str] = ()) -> None:
    keys = [q["key"] for q in ScreeningForm.current(d.clinic).questions]
    said_yes = set(yes)
    assert said_yes <= set(keys), said_yes - set(keys)
    do_screen_patient(
        patient, {k: k in said_yes for k in keys}, d.staff.frontdesk, via=VIA, screened_at=at
    )


def _consent(d: Demo, patient: Patient, t: Treatment, at: dt.datetime) -> Consent:
    consent = do_sign_consent(
        patient,
        products=[d.products[k] for k in t.products],
        signed_name=f"{patient.first_name} {patient.last_name}",
        method=d.rng.choice(("typed", "typed", "paper")),
        signed_at=at,
        indication=t.indication,
        areas=list(t.areas),
        user=d.staff.practitioner,
        via=VIA,
    )
    _backdate(consent, recorded_at=at)
    return consent


def _plan(
    d: Demo,
    patient: Patient,
    t: Treatment,
    *,
    cadence: int,
    planned: int,
    first_on: dt.date,
    at: dt.datetime,
) -> Course:
    protocol = ClinicProtocol.current(d.clinic, t.protocol)
    assert protocol is not None, t.protocol
    course = do_plan_course(
        patient,
        protocol,
        indication=t.indication,
        areas=list(t.areas),
        cadence_days=cadence,
        planned_sessions=planned,
        first_session_on=first_on,
        products=[d.products[k] for k in t.products],
        user=d.staff.frontdesk,
        via=VIA,
    )
    _backdate(course, created_at=at)
    return course


def _give_test(d: Demo, course: Course, t: Treatment, at: dt.datetime) -> AllergyTest:
    day = at.astimezone(d.clinic.tz).date()
    products = [t.products[0], t.products[-1]]  # two test injections (seed 004)
    sites = ("left inner forearm", "right inner forearm")
    return do_give_allergy_test(
        course,
        given_at=at,
        injections=[
            TestInjection(lot=_lot(d, k, day), site=site)
            for k, site in zip(products, sites, strict=True)
        ],
        user=d.staff.practitioner,
        via=VIA,
    )


def _read_test(
    d: Demo, test: AllergyTest, at: dt.datetime, result: str = "none", notes: str = ""
) -> None:
    do_read_allergy_test(
        test,
        read_at=at,
        result=result,
        notes=notes or "Both sites clear: no redness, wheal or itching.",
        user=d.staff.practitioner,
        via=VIA,
    )


def _intake(
    d: Demo, p: Person, t: Treatment, consult_on: dt.date, caution: Iterable[str] = ()
) -> Patient:
    """Registration, screening and consent at the first consultation."""
    consult = d.slot(consult_on)
    patient = _register(d, p, consult - dt.timedelta(days=d.rng.randint(2, 9)))
    _screen(d, patient, consult, caution)
    _consent(d, patient, t, consult + dt.timedelta(minutes=40))
    return patient


def _chart(d: Demo, course: Course, t: Treatment, at: dt.datetime, by: User) -> Session:
    lidocaine_used = "lidocaine" in t.products
    session = do_record_session(
        course,
        performed_at=at,
        practitioner=by,
        injections=_injections(d, t, at.astimezone(d.clinic.tz).date()),
        stimulants_avoided=True,
        numbing_cream=not lidocaine_used or d.rng.random() < 0.5,
        burning_minutes=d.rng.choice((None, 10, 15, 20)),
        discomfort_minutes=d.rng.choice((None, 10, 15)),
        user=by,
        via=VIA,
    )
    _backdate(session, created_at=at + dt.timedelta(minutes=30))
    return session


def _schedule(d: Demo, count: int, cadence: int, last_days_ago: int) -> list[dt.date]:
    """Session days ending `last_days_ago`, each `cadence` days after the one before, give or
    take a day (always more than the protocol's minimum of cadence minus the tolerance)."""
    gaps = [cadence + d.rng.choice((-1, 0, 0, 0, 1)) for _ in range(count - 1)]
    day = d.day(-last_days_ago - sum(gaps))
    days = [day]
    for gap in gaps:
        day += dt.timedelta(days=gap)
        days.append(day)
    return days


@dataclass
class History:
    patient: Patient
    course: Course
    sessions: list[Session]


def _course_history(
    d: Demo,
    p: Person,
    t: Treatment,
    *,
    cadence: int,
    planned: int,
    done: int,
    last_days_ago: int,
    caution: Iterable[str] = (),
    allergies: dict[str, str] | None = None,
    by: User | None = None,
) -> History:
    """Intake, a course planned from the first session's day, an allergy test given three days
    before it and read the next day with no reaction, then `done` sessions at the cadence."""
    days = _schedule(d, done, cadence, last_days_ago)
    first = days[0]
    patient = _intake(d, p, t, first - dt.timedelta(days=d.rng.randint(8, 14)), caution)
    for ingredient, reaction in (allergies or {}).items():
        _record_allergy(d, patient, ingredient, reaction, at=patient.created_at)
    course = _plan(
        d,
        patient,
        t,
        cadence=cadence,
        planned=planned,
        first_on=first,
        at=d.slot(first - dt.timedelta(days=5)),
    )
    test = _give_test(d, course, t, d.at(first - dt.timedelta(days=3), 10, 30))
    _read_test(d, test, d.at(first - dt.timedelta(days=2), 11, 0))
    practitioner = by or d.rng.choice((d.staff.practitioner, d.staff.practitioner, d.staff.manager))
    at_test = d.at(first - dt.timedelta(days=3), 10, 45)
    outcomes_demo.record_baseline(course, at_test, d.staff.practitioner, d.rng)
    sessions = [_chart(d, course, t, d.slot(day), practitioner) for day in days]
    outcomes_demo.record_progress(course, sessions, practitioner, d.rng)
    course.refresh_from_db()
    return History(patient, course, sessions)


def _record_allergy(
    d: Demo, patient: Patient, ingredient: str, reaction: str, at: dt.datetime
) -> None:
    allergy = Allergy.objects.create(
        patient=patient,
        ingredient=Ingredient.objects.get(clinic=None, key=ingredient),
        reaction=reaction,
        recorded_at=at,
    )
    audit(
        clinic=d.clinic,
        user=d.staff.practitioner,
        action=AuditEvent.Action.CREATE,
        obj=allergy,
        patient_id=patient.pk,
        via=VIA,
        ingredient=ingredient,
    )


def _side_effect(
    d: Demo,
    session: Session,
    kind: str,
    *,
    onset: dt.datetime,
    grade: int = 1,
    lasted: dt.timedelta | None = None,
    description: str = "",
) -> SideEffect:
    effect = do_report_side_effect(
        session,
        kind=kind,
        onset_at=onset,
        grade=grade,
        resolved_at=onset + lasted if lasted is not None else None,
        description=description,
        user=d.staff.practitioner,
        via=VIA,
    )
    _backdate(effect, reported_at=min(onset + dt.timedelta(hours=20), d.now))
    return effect


# ---------------------------------------------------------------------------------------------
# Stories: one function per state of the journey. Each takes the loader and a person.

Story = Callable[[Demo, Person], Any]


def registered(d: Demo, p: Person) -> Patient:
    return _register(d, p, d.slot(d.day(-d.rng.randint(1, 20))))


def screened(d: Demo, p: Person, yes: tuple[str, ...] = ()) -> Patient:
    at = d.slot(d.day(-d.rng.randint(1, 15)))
    patient = _register(d, p, at - dt.timedelta(days=d.rng.randint(1, 5)))
    _screen(d, patient, at, yes)
    return patient


def consented(d: Demo, p: Person, t: Treatment) -> Course:
    """Screened and consented; the course is booked but the allergy test is still to come."""
    patient = _intake(d, p, t, d.day(-d.rng.randint(1, 4)))
    return _plan(
        d,
        patient,
        t,
        cadence=7,
        planned=12 if t.protocol != "cellulite" else 16,
        first_on=d.day(d.rng.randint(7, 12)),
        at=d.now - dt.timedelta(hours=2),
    )


def allergy_test_waiting(d: Demo, p: Person, t: Treatment, hours_ago: int) -> AllergyTest:
    """The allergy test was given `hours_ago`; it can be read 24 h after."""
    given = d.now - dt.timedelta(hours=hours_ago)
    patient = _intake(d, p, t, d.day(-d.rng.randint(5, 10)))
    readable = (given + dt.timedelta(hours=24)).astimezone(d.clinic.tz).date()
    course = _plan(
        d,
        patient,
        t,
        cadence=14,
        planned=12,
        first_on=readable + dt.timedelta(days=1),
        at=given - dt.timedelta(minutes=30),
    )
    return _give_test(d, course, t, given)


def allergy_test_read(
    d: Demo, p: Person, t: Treatment, starts_in: int, result: str = "none", notes: str = ""
) -> Course:
    """The allergy test was given, then read 25 h later; session 1 is `starts_in` days away."""
    given = d.at(d.day(-starts_in - 2), 10, 0)
    patient = _intake(d, p, t, d.day(-starts_in - 9))
    course = _plan(
        d,
        patient,
        t,
        cadence=7,
        planned=10 if t.protocol != "cellulite" else 15,
        first_on=d.day(starts_in),
        at=given - dt.timedelta(days=2),
    )
    test = _give_test(d, course, t, given)
    _read_test(d, test, given + dt.timedelta(hours=25), result, notes)
    return course


def mid_course(d: Demo, p: Person, t: Treatment, **kw: Any) -> History:
    return _course_history(d, p, t, **kw)


def completed(d: Demo, p: Person, t: Treatment, **kw: Any) -> History:
    """Every planned session given, the last 6 to 8 months ago: maintenance is due."""
    history = _course_history(d, p, t, planned=kw["done"], **kw)
    assert history.course.status == Course.Status.COMPLETED
    return history


def maintenance(d: Demo, p: Person, t: Treatment) -> History:
    history = completed(d, p, t, cadence=7, done=10, last_days_ago=228, by=d.staff.manager)
    day = d.day(-6)
    history.sessions.append(_chart(d, history.course, t, d.slot(day), d.staff.manager))
    return history


def stopped(d: Demo, p: Person, t: Treatment) -> History:
    history = _course_history(d, p, t, cadence=14, planned=12, done=5, last_days_ago=40)
    do_stop_course(
        history.course,
        "Moved to Chicago for work; course stopped after 5 of 12 sessions at her request.",
        d.staff.manager,
        via=VIA,
    )
    return history


def allergic(d: Demo, p: Person) -> History:
    """Allergic to artichoke extract (Asteraceae), so she is on the cellulite mix and the
    lipolytic mix would be refused."""
    return _course_history(
        d,
        p,
        CELLULITE_HIPS,
        cadence=7,
        planned=16,
        done=5,
        last_days_ago=3,
        caution=["ingredient_allergy"],
        allergies={"artichoke_extract": "Hives and wheezing with ragweed and chamomile"},
    )


def swelling_expected(d: Demo, p: Person) -> History:
    history = _course_history(d, p, FACIAL, cadence=7, planned=10, done=3, last_days_ago=2)
    last = history.sessions[-1]
    _side_effect(
        d,
        last,
        "swelling",
        onset=last.performed_at + dt.timedelta(hours=2),
        description="Mild puffiness over both cheeks, no redness or heat.",
    )
    return history


def bruising_beyond(d: Demo, p: Person) -> History:
    history = _course_history(d, p, FAT, cadence=14, planned=10, done=4, last_days_ago=10)
    last = history.sessions[-1]
    _side_effect(
        d,
        last,
        "bruising",
        onset=last.performed_at + dt.timedelta(hours=3),
        description="Bruises across the lower abdomen, still purple at day 10.",
    )
    return history


def infection_urgent(d: Demo, p: Person) -> History:
    """A tender nodule weeks after a session (SPEC: mycobacterial infection appears 1 to 12
    weeks after treatment); the session used the lot that is later recalled."""
    history = _course_history(d, p, CELLULITE, cadence=14, planned=15, done=6, last_days_ago=12)
    fourth = history.sessions[3]
    _side_effect(
        d,
        fourth,
        "infection",
        onset=d.slot(d.day(-5)),
        grade=2,
        description=(
            "Tender red nodule with a little discharge at a left thigh injection site. "
            "Suspected non-tuberculous mycobacterial infection; swab sent for AFB culture."
        ),
    )
    return history


def _completed_with_effects(d: Demo, p: Person, t: Treatment, **kw: Any) -> History:
    history = completed(d, p, t, **kw)
    third = history.sessions[2]
    if t.protocol == "cellulite":
        _side_effect(
            d,
            third,
            "bruising",
            onset=third.performed_at + dt.timedelta(hours=4),
            lasted=dt.timedelta(days=4),
            description="Small bruises on the outer thighs.",
        )
    else:
        _side_effect(
            d,
            third,
            "discomfort",
            onset=third.performed_at,
            lasted=dt.timedelta(minutes=12),
        )
    return history


CAST: list[tuple[Person, Story]] = [
    (Person("Olivia", "Bennett", "female"), registered),
    (Person("Marcus", "Thompson", "male"), registered),
    (Person("Hana", "Kobayashi", "female"), registered),
    (Person("Sofia", "Hernández", "female"), screened),
    (Person("Daniel", "Kowalski", "male"), screened),
    (
        Person("Grace", "Okonkwo", "female"),
        partial(screened, yes=("anticoagulants_or_bleeding_disorder",)),
    ),
    (Person("Rachel", "Goldberg", "female"), partial(screened, yes=("keloid_history",))),
    (Person("Emily", "Nguyen", "female"), partial(screened, yes=("pregnant",))),
    (Person("Tyler", "Brooks", "male"), partial(screened, yes=("isotretinoin_last_6_months",))),
    (Person("Isabella", "Rossi", "female"), partial(consented, t=CELLULITE)),
    (Person("Nadia", "Petrova", "female"), partial(consented, t=FACIAL_SAGGING)),
    (Person("Chloé", "Dubois", "female"), partial(allergy_test_waiting, t=FAT_ARMS, hours_ago=3)),
    (Person("Jamal", "Washington", "male"), partial(allergy_test_waiting, t=HAIR, hours_ago=20)),
    (Person("Priyanka", "Iyer", "female"), partial(allergy_test_read, t=FACIAL, starts_in=1)),
    (Person("Laura", "Schmidt", "female"), partial(allergy_test_read, t=CELLULITE, starts_in=2)),
    (
        Person("Ava", "Martinez", "female"),
        partial(
            allergy_test_read,
            t=FAT,
            starts_in=3,
            result="local",
            notes="Red wheal of 12 mm at the left forearm site, itchy; right site clear.",
        ),
    ),
    (
        Person("Megan", "O'Brien", "female"),
        partial(mid_course, t=CELLULITE, cadence=7, planned=18, done=8, last_days_ago=7),
    ),
    (
        Person("Carmen", "Delgado", "female"),
        partial(
            mid_course,
            t=FAT,
            cadence=14,
            planned=12,
            done=5,
            last_days_ago=9,
            caution=["autoimmune_disease"],
        ),
    ),
    (
        Person("Yuki", "Tanaka", "female"),
        partial(mid_course, t=FACIAL_SAGGING, cadence=7, planned=10, done=6, last_days_ago=4),
    ),
    (
        Person("David", "Cohen", "male"),
        partial(mid_course, t=HAIR, cadence=14, planned=12, done=4, last_days_ago=6),
    ),
    (Person("Fatima", "Al-Sayed", "female"), allergic),
    (Person("Jessica", "Park", "female"), swelling_expected),
    (Person("Brianna", "Mitchell", "female"), bruising_beyond),
    (Person("Natália", "Silva", "female"), infection_urgent),
    (
        Person("Catherine", "Walsh", "female"),
        partial(_completed_with_effects, t=CELLULITE, cadence=7, done=15, last_days_ago=230),
    ),
    (
        Person("Michael", "Russo", "male"),
        partial(completed, t=FAT, cadence=14, done=10, last_days_ago=215),
    ),
    (
        Person("Linda", "Chen", "female"),
        partial(_completed_with_effects, t=FACIAL, cadence=7, done=10, last_days_ago=200),
    ),
    (
        Person("Anthony", "Greene", "male"),
        partial(
            completed,
            t=HAIR,
            cadence=14,
            done=12,
            last_days_ago=190,
            caution=["insulin_dependent_diabetes"],
        ),
    ),
    (Person("Samantha", "Reyes", "female"), partial(maintenance, t=FAT)),
    (Person("Elena", "Vasquez", "female"), partial(stopped, t=FAT)),
]


# ---------------------------------------------------------------------------------------------
# After the cast: what happens today.


def _refused_attempt(d: Demo) -> None:
    """practitioner2 tries to give Megan O'Brien her weekly session: refused, and audited,
    because their licence has expired."""
    course = Course.objects.get(clinic=d.clinic, patient__last_name="O'Brien")
    try:
        do_record_session(
            course,
            performed_at=d.now - dt.timedelta(minutes=5),
            practitioner=d.staff.practitioner2,
            injections=_injections(d, CELLULITE, d.today),
            stimulants_avoided=True,
            numbing_cream=True,
            user=d.staff.practitioner2,
            via=VIA,
        )
    except SessionRefused:
        pass
    else:  # pragma: no cover - the licence gate is broken
        raise AssertionError("practitioner2's session was not refused")


# ---------------------------------------------------------------------------------------------
# The calendar: hours, rooms, a holiday, and every active course booked to its end.

# Courses booked by the demo; at scale=10 booking all 600 would only slow the benchmarks.
BOOKED_COURSES = 40


def _calendar(d: Demo) -> None:
    clinic, staff = d.clinic, d.staff
    for weekday in range(6):  # Monday to Saturday
        OpeningHours.objects.create(
            clinic=clinic, weekday=weekday, opens=dt.time(8), closes=dt.time(20)
        )
    for n in (1, 2, 3):
        Room.objects.create(clinic=clinic, name=f"Room {n}")
    week = {
        staff.practitioner: ((0, 1, 2, 3, 4), ((9, 13), (14, 18))),
        staff.manager: ((1, 3), ((9, 13), (14, 17))),
        staff.practitioner2: ((0, 2, 4), ((10, 16),)),
    }
    for user, (days, blocks) in week.items():
        for weekday in days:
            for starts, ends in blocks:
                WorkingHours.objects.create(
                    clinic=clinic,
                    user=user,
                    weekday=weekday,
                    starts=dt.time(starts),
                    ends=dt.time(ends),
                )
    for day, name in _holidays(d.today):
        Holiday.objects.create(clinic=clinic, date=day, name=name)
    WorkingException.objects.create(
        clinic=clinic,
        user=staff.practitioner,
        date=_next_weekday(d.day(14), 4),
        kind=WorkingException.Kind.TIME_OFF,
        note="Conference",
    )
    # One patient missed yesterday's session: Today flags the course until it is rebooked.
    active = list(Course.objects.filter(clinic=clinic, status=Course.Status.ACTIVE).order_by("pk"))
    missed = active[0] if active else None
    if missed is not None:
        yesterday = d.at(d.day(-1), 11)
        Appointment.objects.create(
            clinic=clinic,
            patient=missed.patient,
            course=missed,
            kind=Appointment.Kind.SESSION,
            practitioner=staff.practitioner,
            starts_at=yesterday,
            ends_at=yesterday + dt.timedelta(minutes=40),
            status=Appointment.Status.NO_SHOW,
            no_show_at=yesterday + dt.timedelta(minutes=20),
            no_show_by=staff.frontdesk,
            created_by=staff.frontdesk,
        )
    planned = Course.objects.filter(clinic=clinic, status=Course.Status.PLANNED).order_by("pk")
    for course in [*active[1:], *planned][:BOOKED_COURSES]:
        try:
            do_book_course(course, user=staff.frontdesk, via=VIA)
        except BookingRefused:
            continue  # a course whose window has passed is left to Today's due list
    # A cancellation, shown struck through on the chart and the calendar.
    first = (
        Appointment.objects.filter(clinic=clinic, status=Appointment.Status.BOOKED)
        .order_by("-starts_at")
        .first()
    )
    if first is not None:
        do_cancel(first, user=staff.frontdesk, reason="Patient moving away", via=VIA)


def _holidays(today: dt.date) -> list[tuple[dt.date, str]]:
    out = []
    for year in (today.year, today.year + 1):
        out += [(dt.date(year, 12, 25), "Christmas Day"), (dt.date(year, 1, 1), "New Year's Day")]
    return [(day, name) for day, name in out if day >= today]


def _next_weekday(day: dt.date, weekday: int) -> dt.date:
    return day + dt.timedelta(days=(weekday - day.weekday()) % 7)


def _portal_login(d: Demo) -> None:
    """Megan O'Brien (mid-course, visits booked) signs in to the patient portal."""
    first, last = PORTAL_PATIENT
    patient = Patient.objects.get(clinic=d.clinic, first_name=first, last_name=last)
    user = User.objects.create_user(
        PORTAL_LOGIN,
        email=PORTAL_LOGIN,
        password=PASSWORD,
        first_name=first,
        last_name=last,
    )
    Patient.objects.filter(pk=patient.pk).update(email=PORTAL_LOGIN, user=user)


def load(scale: int = 1) -> bool:
    """Create the demo clinic, or do nothing (and return False) if it exists already.

    `scale` repeats the cast that many times, each copy with its own surname suffix, for the
    benchmarks that need a busier clinic than the demo (`scale=10` is ten times the demo)."""
    if Clinic.objects.filter(name=CLINIC_NAME).exists():
        return False
    with transaction.atomic():
        clinic = Clinic.objects.create(
            name=CLINIC_NAME,
            city="New York",
            timezone="America/New_York",
            currency="USD",
            phone="+1 212 555 0100",
        )
        do_setup_clinic(clinic)
        now = timezone.now()
        today = now.astimezone(clinic.tz).date()
        d = Demo(clinic, _create_staff(clinic, today), now, random.Random(SEED))
        _create_formulary(d, scale)
        for copy in range(scale):
            for person, story in CAST:
                story(d, replace(person, last=f"{person.last}-{copy + 1}") if copy else person)
        _recall(d)
        _tidy_vials(d)
        _money(d)
        _portal_login(d)
        _refused_attempt(d)
        _calendar(d)
        do_sweep_side_effects(timezone.now())
        safety_demo.seed(clinic, d.staff.practitioner, timezone.now())
        surveil_demo.seed(clinic, d.staff.practitioner, timezone.now())
        photo_demo.seed(clinic, d.staff.practitioner, d.rng)
    return True


def logins_text(host: str, port: int) -> str:
    base = f"http://{host}:{port}"
    slug = Clinic.objects.filter(name=CLINIC_NAME).values_list("slug", flat=True).first()
    width = max(len(u) for u, _ in LOGINS) + len(f" / {PASSWORD}")
    lines = [
        f"{CLINIC_NAME} (New York)",
        f"  Web:       {base}/",
        f"  Admin:     {base}/admin/",
        f"  API docs:  {base}/api/v1/docs",
        "",
        "Sign in as (username / password):",
        *(f"  {f'{u} / {PASSWORD}':<{width}}  {role}" for u, role in LOGINS),
        f"  (practitioner2 / {PASSWORD} is a practitioner whose licence has expired:",
        "   every session they chart is refused.)",
        "",
        f"The patient portal: {base}/my/login/",
        f"  {PORTAL_LOGIN} / {PASSWORD}  {' '.join(PORTAL_PATIENT)}, mid-course",
        *([f"The clinic's public site: {base}/site/{slug}/"] if slug else []),
    ]
    return "\n".join(lines)
