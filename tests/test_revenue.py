"""Revenue by protocol, practitioner and month (billing.reports.revenue, /manage/revenue/ and
GET /api/v1/reports/revenue): before tax, earned when the service is given, so that it
reconciles with the package liability. An invoice counts when issued and its credit notes when
they are; a package counts each session when it is given and, when settled, what it kept."""

from __future__ import annotations

import datetime as dt
import random
import re
import xml.etree.ElementTree as ET
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.test import Client

from mesoclinic.accounts.models import User
from mesoclinic.billing import actions, packages, reports
from mesoclinic.billing.models import Invoice, Package, PackageRedemption
from mesoclinic.courses.actions import do_plan_course
from mesoclinic.courses.models import Course, Session
from mesoclinic.patients.models import Patient
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.scheduling.models import Appointment
from tests.conftest import World, api_for, error_fields, problem_of
from tests.test_api_endpoints import patient_login

D = Decimal
SVG = "{http://www.w3.org/2000/svg}"
# The indication, areas and number of sessions of a course of each protocol.
PLANS = {
    "cellulite": ("cellulite", ["thighs", "buttocks"], 15),
    "hair_loss": ("hair_loss", ["scalp"], 10),
}


def local(world: World, y: int, m: int, d: int, h: int = 12, minute: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, h, minute, tzinfo=world.clinic.tz)


def course_of(world: World, patient: Patient, key: str = "cellulite") -> Course:
    indication, areas, sessions = PLANS[key]
    protocol = ClinicProtocol.current(world.clinic, key)
    assert protocol is not None
    return do_plan_course(
        patient,
        protocol,
        indication=indication,
        areas=areas,
        cadence_days=7,
        planned_sessions=sessions,
        user=world.manager,
    )


def protocol_name(world: World, key: str) -> str:
    protocol = ClinicProtocol.current(world.clinic, key)
    assert protocol is not None
    return protocol.name


def visit(world: World, patient: Patient, who: User, at: dt.datetime) -> Appointment:
    [done] = Appointment.objects.bulk_create(
        [
            Appointment(
                clinic=world.clinic,
                patient=patient,
                kind=Appointment.Kind.REVIEW,
                practitioner=who,
                starts_at=at,
                ends_at=at + dt.timedelta(minutes=20),
                status=Appointment.Status.DONE,
            )
        ]
    )
    return done


def invoice(
    world: World,
    patient: Patient,
    amount: str,
    at: dt.datetime,
    *,
    tax: str = "0",
    course: Course | None = None,
    appointment: Appointment | None = None,
) -> Invoice:
    with time_machine.travel(at, tick=False):
        found = actions.issue_invoice(
            patient, [actions.LineInput("Session", D(amount), D(tax))], user=world.front_desk
        )
    # What it is for, written as the issuing screens write it.
    Invoice.objects.filter(pk=found.pk).update(course=course, appointment=appointment)
    return Invoice.objects.get(pk=found.pk)


def credit(world: World, of: Invoice, amount: str, at: dt.datetime) -> Invoice:
    with time_machine.travel(at, tick=False):
        return actions.issue_credit_note(of, D(amount), "Goodwill", user=world.manager)


def package(world: World, course: Course, sessions: int, price: str, at: dt.datetime) -> Package:
    with time_machine.travel(at, tick=False):
        return packages.sell(course, sessions, D(price), user=world.front_desk)


def give(world: World, pkg: Package, at: dt.datetime, who: User | None = None) -> Session:
    """A session of the package's course, given at `at` and redeemed from the package (the
    gates are charting's business, tested elsewhere)."""
    course = pkg.course
    number = Session.objects.filter(course=course).count() + 1
    [session] = Session.objects.bulk_create(
        [
            Session(
                course=course,
                number=number,
                performed_at=at,
                practitioner=who or world.practitioner,
                stimulants_avoided=True,
            )
        ]
    )
    PackageRedemption.objects.create(package=pkg, session=session, at=at)
    return session


def settle(world: World, pkg: Package, given_back: str | None, at: dt.datetime) -> None:
    """The state a settlement leaves: the course stopped, the rest credited on the package's
    invoice, and the package marked settled."""
    Course.objects.filter(pk=pkg.course_id).update(status=Course.Status.STOPPED)
    if given_back is not None:
        credit(world, pkg.invoice, given_back, at)
    Package.objects.filter(pk=pkg.pk).update(
        settled_at=at, settled_by=world.manager, rest_credited=D(given_back or "0")
    )


def table(found: reports.Revenue) -> dict[tuple[str, str, str], Decimal]:
    return {(f"{r.month:%Y-%m}", r.protocol, r.practitioner): r.amount for r in found.rows}


def year(world: World) -> reports.Revenue:
    return reports.revenue(world.clinic, dt.date(2026, 1, 1), dt.date(2026, 12, 31))


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


class RevenueRuleTests:
    def test_an_invoice_counts_its_subtotal_in_its_month_for_its_protocol_and_practitioner(
        self, world: World, patient: Patient
    ) -> None:
        course = course_of(world, patient)
        seen = visit(world, patient, world.practitioner, local(world, 2026, 3, 4))
        invoice(
            world, patient, "500", local(world, 2026, 3, 4), tax="8.875", course=course,
            appointment=seen,
        )  # fmt: skip
        invoice(world, patient, "80", local(world, 2026, 3, 20))
        invoice(world, patient, "120", local(world, 2026, 4, 2), appointment=seen)
        found = year(world)
        cellulite = protocol_name(world, "cellulite")
        who = world.practitioner.display_name
        # Before tax: the 44.38 of tax on the first invoice is not revenue.
        assert table(found) == {
            ("2026-03", cellulite, who): D("500.00"),
            ("2026-03", "Not for a course", "Not for a visit"): D("80.00"),
            ("2026-04", "Not for a course", who): D("120.00"),
        }
        assert found.total == D("700.00")
        months = dict(found.by_month)
        assert len(months) == 12 and months[dt.date(2026, 3, 1)] == D("580.00")
        assert months[dt.date(2026, 4, 1)] == D("120.00") and months[dt.date(2026, 5, 1)] == 0
        assert [(t.label, t.amount) for t in found.by_protocol] == [
            (cellulite, D("500.00")),
            ("Not for a course", D("200.00")),
        ]
        assert [(t.label, t.amount) for t in found.by_practitioner] == [
            (who, D("620.00")),
            ("Not for a visit", D("80.00")),
        ]

    def test_a_credit_note_takes_its_subtotal_off_in_its_own_month(
        self, world: World, patient: Patient
    ) -> None:
        course = course_of(world, patient, "hair_loss")
        seen = visit(world, patient, world.manager, local(world, 2026, 5, 10))
        first = invoice(
            world, patient, "1000", local(world, 2026, 5, 10), tax="10", course=course,
            appointment=seen,
        )  # fmt: skip
        # 110 with tax credited in June: 100 before tax, under May's protocol and practitioner.
        credit(world, first, "110", local(world, 2026, 6, 1))
        found = year(world)
        key = (protocol_name(world, "hair_loss"), world.manager.display_name)
        assert table(found) == {("2026-05", *key): D("1000.00"), ("2026-06", *key): D("-100.00")}
        assert found.total == D("900.00")
        # A report of June alone shows the credit without its invoice.
        june = reports.revenue(world.clinic, dt.date(2026, 6, 1), dt.date(2026, 6, 30))
        assert june.total == D("-100.00") and june.by_month == [(dt.date(2026, 6, 1), D("-100.00"))]

    def test_a_package_counts_nothing_when_sold_and_each_session_when_given(
        self, world: World, patient: Patient
    ) -> None:
        course = course_of(world, patient)
        sold = package(world, course, 3, "1000", local(world, 2026, 1, 15))
        # A credit note on a package's invoice counts nothing on its own.
        credit(world, sold.invoice, "50", local(world, 2026, 1, 20))
        assert year(world).rows == []
        give(world, sold, local(world, 2026, 2, 3), world.practitioner)
        give(world, sold, local(world, 2026, 2, 10), world.manager)
        found = year(world)
        cellulite = protocol_name(world, "cellulite")
        # 1000 over 3 sessions: each counts what the sessions left drop by (1000 → 666.67 →
        # 333.33), so the three add up to exactly 1000.
        assert table(found) == {
            ("2026-02", cellulite, world.practitioner.display_name): D("333.33"),
            ("2026-02", cellulite, world.manager.display_name): D("333.34"),
        }
        state = packages.states(pk=sold.pk)[0]
        assert found.total + state.value_left == sold.invoice.subtotal
        give(world, sold, local(world, 2026, 3, 3))
        assert year(world).total == D("1000.00")

    def test_a_session_charted_from_a_package_counts_for_whoever_gave_it(
        self, world: World, patient: Patient
    ) -> None:
        from tests.conftest import ago
        from tests.test_courses import chart, ready_course

        course = ready_course(world, patient, ago(days=30))
        sold = packages.sell(course, 4, D("900"), user=world.front_desk)
        chart(world, course, ago(days=21))
        chart(world, course, ago(days=14))
        today = dt.date.today()
        found = reports.revenue(world.clinic, today - dt.timedelta(days=60), today)
        assert found.total == D("450.00") and sold.redemptions.count() == 2
        assert {r.practitioner for r in found.rows} == {world.practitioner.display_name}
        assert {r.protocol for r in found.rows} == {course.protocol.name}

    def test_a_settled_package_counts_what_it_kept_when_settled(
        self, world: World, patient: Patient
    ) -> None:
        course = course_of(world, patient)
        sold = package(world, course, 4, "1000", local(world, 2026, 1, 5))
        give(world, sold, local(world, 2026, 1, 12))
        # The course stops in March; the policy gives back 500 of the 750 not given.
        settle(world, sold, "500", local(world, 2026, 3, 9))
        found = year(world)
        cellulite = protocol_name(world, "cellulite")
        assert table(found) == {
            ("2026-01", cellulite, world.practitioner.display_name): D("250.00"),
            # Kept: 1000 less 500 credited, less the 250 the session already counted.
            ("2026-03", cellulite, "Kept when a package was settled"): D("250.00"),
        }
        # The package, over all time: what it was invoiced for, less what was credited.
        assert found.total == sold.invoice.subtotal - D("500")

    def test_a_package_settled_with_nothing_given_back_keeps_the_sessions_left(
        self, world: World, patient: Patient
    ) -> None:
        course = course_of(world, patient, "hair_loss")
        sold = package(world, course, 3, "100", local(world, 2026, 7, 1))
        give(world, sold, local(world, 2026, 7, 8))
        settle(world, sold, None, local(world, 2026, 8, 31, 23, 59))
        found = year(world)
        assert [(f"{r.month:%Y-%m}", r.amount) for r in found.rows] == [
            ("2026-07", D("33.33")),
            ("2026-08", D("66.67")),
        ]
        assert found.total == D("100.00")

    def test_months_are_the_clinics_own(self, world: World, patient: Patient) -> None:
        # 23:30 on 31 January in New York is 1 February in UTC: January's, for the clinic.
        invoice(world, patient, "10", local(world, 2026, 1, 31, 23, 30))
        invoice(world, patient, "20", local(world, 2026, 2, 1, 0, 10))
        sold = package(world, course_of(world, patient), 2, "300", local(world, 2026, 1, 2))
        give(world, sold, local(world, 2026, 2, 28, 23, 50))  # 1 March in UTC
        found = reports.revenue(world.clinic, dt.date(2026, 1, 1), dt.date(2026, 3, 31))
        assert found.by_month == [
            (dt.date(2026, 1, 1), D("10.00")),
            (dt.date(2026, 2, 1), D("170.00")),
            (dt.date(2026, 3, 1), D("0")),
        ]
        # The range is the clinic's days, both ends included.
        january = reports.revenue(world.clinic, dt.date(2026, 1, 31), dt.date(2026, 1, 31))
        assert january.total == D("10.00")
        assert reports.revenue(world.clinic, dt.date(2026, 2, 1), dt.date(2026, 2, 1)).total == 20

    def test_it_counts_in_the_currencys_minor_unit(self, world: World, patient: Patient) -> None:
        world.clinic.currency = "JPY"
        world.clinic.save()
        patient.refresh_from_db()
        sold = package(world, course_of(world, patient), 3, "1000", local(world, 2026, 4, 1))
        for day in (2, 9, 16):
            give(world, sold, local(world, 2026, 4, day))
        found = year(world)
        # 333, 334, 333 yen: whole yen, adding up to the price.
        assert found.total == D("1000") and found.currency == "JPY"
        assert reports.package_session_value(D("1000"), 3, 2, "JPY") == D("334")

    def test_another_clinics_money_is_never_counted(
        self, world: World, other: World, patient: Patient
    ) -> None:
        invoice(world, patient, "500", local(world, 2026, 3, 1))
        assert reports.revenue(other.clinic, dt.date(2026, 1, 1), dt.date(2026, 12, 31)).rows == []

    def test_it_refuses_a_range_back_to_front_or_too_long(self, world: World) -> None:
        from django.core.exceptions import ValidationError

        with pytest.raises(ValidationError) as back:
            reports.revenue(world.clinic, dt.date(2026, 5, 1), dt.date(2026, 4, 30))
        assert set(back.value.message_dict) == {"end"}
        with pytest.raises(ValidationError) as long:
            reports.revenue(world.clinic, dt.date(2016, 5, 1), dt.date(2026, 5, 1))
        assert set(long.value.message_dict) == {"end"}
        assert reports.revenue(world.clinic, dt.date(2016, 5, 2), dt.date(2026, 5, 1)).total == 0

    def test_it_takes_a_few_queries_whatever_the_number_of_documents(
        self, world: World, patient: Patient, django_assert_max_num_queries: Any
    ) -> None:
        course = course_of(world, patient)
        for n in range(1, 13):
            first = invoice(world, patient, "100", local(world, 2026, n, 3), course=course)
            credit(world, first, "10", local(world, 2026, n, 4))
            sold = package(world, course, 2, "300", local(world, 2026, n, 5))
            give(world, sold, local(world, 2026, n, 6))
            give(world, sold, local(world, 2026, n, 7), world.manager)
        # Four aggregates, the protocols' names and the practitioners'.
        with django_assert_max_num_queries(6):
            found = year(world)
        assert found.total == 12 * D("390.00")


class RevenueIdentityTests:
    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_revenue_over_all_time_reconciles_with_invoices_credits_and_packages(
        self, world: World, seed: int
    ) -> None:
        """On random money, revenue over all time is the non-package invoices' subtotals less
        their credit notes, plus the sessions given from packages, plus what settled packages
        kept; each group is what a plain count of every document says; and a package never
        settled is its sessions counted plus the value of its sessions left."""
        rng = random.Random(seed)
        patients = [
            Patient.objects.create(
                clinic=world.clinic,
                first_name="P",
                last_name=str(n),
                date_of_birth=dt.date(1980, 1, 1),
            )
            for n in range(3)
        ]
        staff = [world.practitioner, world.manager]
        courses = [course_of(world, p, rng.choice(list(PLANS))) for p in patients for _ in (1, 2)]
        start = local(world, 2025, 1, 1, 0, 0)

        def moment(after: dt.datetime | None = None) -> dt.datetime:
            base = after or start
            limit = local(world, 2026, 11, 30)
            return base + (limit - base) * rng.random()

        plain: list[Invoice] = []
        for _ in range(30):
            patient = rng.choice(patients)
            course = rng.choice([None, *(c for c in courses if c.patient_id == patient.pk)])
            seen = rng.choice([None, visit(world, patient, rng.choice(staff), moment())])
            amount = f"{rng.randint(1, 90000) / 100:.2f}"
            tax = rng.choice(["0", "8.875", "20"])
            at = moment()
            plain.append(
                invoice(world, patient, amount, at, tax=tax, course=course, appointment=seen)
            )
            if rng.random() < 0.4:
                credit(world, plain[-1], f"{plain[-1].total * D(rng.random()):.2f}", moment(at))
        sold: list[Package] = []
        for course in courses:
            sessions = rng.randint(1, 9)
            at = moment()
            pkg = package(world, course, sessions, f"{rng.randint(100, 500000) / 100:.2f}", at)
            sold.append(pkg)
            used = rng.randint(0, sessions)
            last = at
            for _ in range(used):
                # Sessions are not always charted in the order given.
                given_at = moment(at)
                last = max(last, given_at)
                give(world, pkg, given_at, rng.choice(staff))
            if rng.random() < 0.5:
                back = f"{pkg.invoice.total * D(rng.random()) * D('0.9'):.2f}"
                settle(world, pkg, back if D(back) > 0 else None, moment(last))
            elif rng.random() < 0.5:
                credit(world, pkg.invoice, "1", moment(at))  # counts nothing until settled

        found = reports.revenue(world.clinic, dt.date(2025, 1, 1), dt.date(2026, 12, 31))

        # 1. The identity, from the documents.
        def subtotal_of_credits(of: Invoice) -> Decimal:
            return sum((c.subtotal for c in of.credit_notes.all()), D(0))

        invoiced = sum((i.subtotal - subtotal_of_credits(i) for i in plain), D(0))
        redeemed = retained = D(0)
        for pkg in Package.objects.select_related("invoice"):
            subtotal, n = pkg.invoice.subtotal, pkg.sessions
            used = pkg.redemptions.count()
            counted = subtotal - reports.sessions_left_value(subtotal, n, used, "USD")
            redeemed += counted
            if pkg.settled_at is not None:
                retained += subtotal - subtotal_of_credits(pkg.invoice) - counted
            else:
                # 3. A package never settled: its sessions counted and the value of the rest.
                state = packages.states(pk=pkg.pk)[0]
                assert state.value_left == reports.sessions_left_value(subtotal, n, used, "USD")
                assert subtotal == counted + state.value_left
        assert found.total == invoiced + redeemed + retained

        # 2. Every group, from a plain walk over every document.
        expected: dict[tuple[str, str, str], Decimal] = {}
        tz = world.clinic.tz

        def add(at: dt.datetime, course: Course | None, who: str, amount: Decimal) -> None:
            key = (
                f"{at.astimezone(tz):%Y-%m}",
                course.protocol.name if course else "Not for a course",
                who,
            )
            expected[key] = expected.get(key, D(0)) + amount

        for i in plain:
            who = i.appointment.practitioner.display_name if i.appointment else "Not for a visit"
            add(i.issued_at, i.course, who, i.subtotal)
            for c in i.credit_notes.all():
                add(c.issued_at, i.course, who, -c.subtotal)
        for pkg in Package.objects.select_related("invoice", "course__protocol"):
            subtotal, n = pkg.invoice.subtotal, pkg.sessions
            for k, r in enumerate(pkg.redemptions.order_by("pk").select_related("session"), 1):
                value = reports.package_session_value(subtotal, n, k, "USD")
                add(r.session.performed_at, pkg.course, r.session.practitioner.display_name, value)
            if pkg.settled_at is not None:
                used = pkg.redemptions.count()
                left = reports.sessions_left_value(subtotal, n, used, "USD")
                kept = left - subtotal_of_credits(pkg.invoice)
                add(pkg.settled_at, pkg.course, "Kept when a package was settled", kept)
        assert table(found) == expected
        assert sum((a for _, a in found.by_month), D(0)) == found.total
        assert sum((t.amount for t in found.by_protocol), D(0)) == found.total
        assert sum((t.amount for t in found.by_practitioner), D(0)) == found.total

    def test_the_sessions_of_a_package_add_up_to_its_price(self) -> None:
        rng = random.Random(5)
        for _ in range(300):
            currency = rng.choice(["USD", "JPY", "KWD"])
            places = {"USD": 2, "JPY": 0, "KWD": 3}[currency]
            subtotal = D(rng.randint(1, 10**7)).scaleb(-places)
            n = rng.randint(1, 100)
            values = [
                reports.package_session_value(subtotal, n, k, currency) for k in range(1, n + 1)
            ]
            assert sum(values) == subtotal
            # Each within one minor unit of the price per session.
            assert all(abs(v - subtotal / n) < D(1).scaleb(-places) for v in values)


class RevenuePageTests:
    def test_a_manager_sees_the_chart_the_tables_and_the_detail(
        self, world: World, patient: Patient
    ) -> None:
        course = course_of(world, patient)
        seen = visit(world, patient, world.practitioner, local(world, 2026, 3, 4))
        invoice(world, patient, "500", local(world, 2026, 3, 4), course=course, appointment=seen)
        first = invoice(world, patient, "80", local(world, 2026, 4, 2))
        credit(world, first, "30", local(world, 2026, 5, 2))
        r = signed_in(world.manager).get("/manage/revenue/", {"start": "2026-01", "end": "2026-06"})
        assert r.status_code == 200
        html = r.content.decode()
        [svg] = re.findall(r"<svg class=\"bars\".*?</svg>", html, re.S)
        # It parses as SVG: a bar for each month with money, none for the empty ones.
        chart = ET.fromstring(svg)
        assert len(chart.findall(f".//{SVG}rect")) == 3 and len(chart.findall(f".//{SVG}g")) == 6
        assert "March 2026: $500.00" in html and "May 2026: -$30.00" in html
        for words in ("By protocol", "By practitioner", "Each month, by protocol and practitioner"):
            assert words in html
        assert protocol_name(world, "cellulite") in html and "Not for a course" in html
        assert world.practitioner.display_name in html and "Not for a visit" in html
        assert "$550.00" in html  # the total
        assert "start=2026-01&amp;end=2026-06&amp;format=csv" in html

    def test_it_shows_the_last_twelve_months_by_default(self, world: World) -> None:
        with time_machine.travel(local(world, 2026, 12, 7), tick=False):
            r = signed_in(world.manager).get("/manage/revenue/")
        assert r.status_code == 200
        found = r.context["found"]
        assert (found.start, found.end) == (dt.date(2026, 1, 1), dt.date(2026, 12, 31))
        assert len(found.by_month) == 12
        assert 'value="2026-01"' in r.content.decode()

    def test_it_refuses_a_range_back_to_front_in_words(self, world: World) -> None:
        r = signed_in(world.manager).get("/manage/revenue/", {"start": "2026-06", "end": "2026-01"})
        assert r.status_code == 400
        assert "The last month must be on or after the start." in r.content.decode()
        r = signed_in(world.manager).get("/manage/revenue/", {"start": "June", "end": "2026-01"})
        assert r.status_code == 400 and "start" in r.context["form"].errors

    def test_csv_has_a_row_for_each_month_protocol_and_practitioner(
        self, world: World, patient: Patient
    ) -> None:
        course = course_of(world, patient)
        seen = visit(world, patient, world.practitioner, local(world, 2026, 3, 4))
        invoice(world, patient, "500", local(world, 2026, 3, 4), course=course, appointment=seen)
        invoice(world, patient, "80", local(world, 2026, 4, 2))
        r = signed_in(world.manager).get(
            "/manage/revenue/", {"start": "2026-01", "end": "2026-12", "format": "csv"}
        )
        assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
        assert 'filename="revenue-2026-01-to-2026-12.csv"' in r["Content-Disposition"]
        lines = r.content.decode().splitlines()
        who = world.practitioner.display_name
        assert lines == [
            "month,protocol,practitioner,amount_before_tax,currency",
            f"2026-03,{protocol_name(world, 'cellulite')},{who},500.00,USD",
            "2026-04,Not for a course,Not for a visit,80.00,USD",
        ]

    def test_only_a_manager_sees_it_and_only_their_clinics_money(
        self, world: World, other: World, patient: Patient
    ) -> None:
        invoice(world, patient, "500", local(world, 2026, 3, 4))
        params = {"start": "2026-01", "end": "2026-12"}
        for user in (world.front_desk, world.practitioner, patient_login()):
            assert signed_in(user).get("/manage/revenue/", params).status_code == 403
        assert Client().get("/manage/revenue/").status_code == 302
        theirs = signed_in(other.manager).get("/manage/revenue/", params)
        assert theirs.status_code == 200 and theirs.context["found"].rows == []
        mine = signed_in(world.manager).get("/manage/revenue/", params)
        assert mine.context["found"].total == D("500.00")

    def test_the_money_pages_link_to_it(self, world: World) -> None:
        manager = signed_in(world.manager)
        for page in ("/manage/prices/", "/manage/daily-close/", "/manage/outstanding/"):
            assert 'href="/manage/revenue/"' in manager.get(page).content.decode(), page


class RevenueApiTests:
    def test_it_answers_the_report_with_amounts_as_strings(
        self, world: World, patient: Patient
    ) -> None:
        course = course_of(world, patient)
        seen = visit(world, patient, world.practitioner, local(world, 2026, 3, 4))
        invoice(world, patient, "500", local(world, 2026, 3, 4), course=course, appointment=seen)
        sold = package(world, course, 2, "300", local(world, 2026, 3, 5))
        give(world, sold, local(world, 2026, 4, 1), world.manager)
        r = api_for(world.manager).get("/reports/revenue", start="2026-03-01", end="2026-04-30")
        assert r.status_code == 200, r.content
        body = r.json()
        cellulite = protocol_name(world, "cellulite")
        assert (body["start"], body["end"], body["currency"]) == ("2026-03-01", "2026-04-30", "USD")
        assert body["total"] == "650.00"
        assert body["months"] == [
            {"month": "2026-03", "amount": "500.00"},
            {"month": "2026-04", "amount": "150.00"},
        ]
        assert body["protocols"] == [{"protocol": cellulite, "amount": "650.00"}]
        assert body["rows"] == [
            {
                "month": "2026-03",
                "protocol_key": "cellulite",
                "protocol": cellulite,
                "practitioner_id": world.practitioner.pk,
                "practitioner": world.practitioner.display_name,
                "amount": "500.00",
            },
            {
                "month": "2026-04",
                "protocol_key": "cellulite",
                "protocol": cellulite,
                "practitioner_id": world.manager.pk,
                "practitioner": world.manager.display_name,
                "amount": "150.00",
            },
        ]

    def test_it_defaults_to_the_last_twelve_months(self, world: World) -> None:
        api = api_for(world.manager)
        with time_machine.travel(local(world, 2026, 12, 7), tick=False):
            body = api.get("/reports/revenue").json()
        assert (body["start"], body["end"]) == ("2026-01-01", "2026-12-07")
        assert len(body["months"]) == 12 and body["rows"] == [] and body["total"] == "0.00"

    def test_bad_dates_are_a_problem_naming_the_field(self, world: World) -> None:
        api = api_for(world.manager)
        assert error_fields(api.get("/reports/revenue", start="2026-13-01")) == {"start"}
        assert error_fields(api.get("/reports/revenue", end="soon")) == {"end"}
        back = api.get("/reports/revenue", start="2026-05-01", end="2026-04-01")
        assert error_fields(back) == {"end"}
        far = api.get("/reports/revenue", start="0001-01-01", end="2026-04-01")
        assert error_fields(far) == {"start"}

    def test_only_a_manager_may_read_it(self, world: World) -> None:
        for user in (world.front_desk, world.practitioner):
            problem_of(api_for(user).get("/reports/revenue"), 403)
