"""Money: exact amounts rounded to each currency's minor unit, invoices numbered without gaps
and never changed, payments up to what is due, credit notes and refunds for managers only,
and a ledger whose sums always reconcile with the documents and the daily close."""

from __future__ import annotations

import datetime as dt
import random
import sys
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.billing import actions, money, reports
from mesoclinic.billing.models import Invoice, LedgerEntry, Payment, PriceItem
from mesoclinic.patients.models import Patient
from tests.conftest import World, api_for, error_fields, problem_of
from tests.scheduling_fixtures import race_processes, run_script
from tests.test_api_endpoints import patient_login
from tests.test_reminders import Mailbox
from tests.test_reminders import mail as mail  # noqa: F401 - a fixture
from tests.test_reminders import smtp_server as smtp_server  # noqa: F401 - a fixture

CHILD = [sys.executable, "-m", "tests.booking_race_child"]


def price(
    world: World, name: str = "Session, one area", amount: str = "500", tax: str = "0"
) -> PriceItem:
    return PriceItem.objects.create(
        clinic=world.clinic,
        kind="session",
        name=name,
        amount=Decimal(amount),
        tax_rate=Decimal(tax),
    )


def invoice_for(world: World, patient: Patient, *lines: tuple[int, int]) -> dict[str, Any]:
    r = api_for(world.front_desk).post(
        f"/patients/{patient.pk}/invoices",
        {"lines": [{"price": p, "quantity": q} for p, q in lines]},
    )
    assert r.status_code == 201, r.content
    return r.json()


class MoneyTests:
    def test_amounts_round_to_each_currencys_minor_unit(self) -> None:
        assert money.rounded(Decimal("10.005"), "USD") == Decimal("10.01")
        assert money.rounded(Decimal("1234.5"), "JPY") == Decimal("1235")
        assert money.rounded(Decimal("1.0005"), "KWD") == Decimal("1.001")
        assert money.tax_of(Decimal("99.99"), Decimal("20"), "EUR") == Decimal("20.00")
        assert money.words(Decimal("1234.5"), "USD") == "$1,234.50"
        assert money.words(Decimal("1234"), "JPY") == "¥1,234"

    def test_an_invoice_adds_its_lines_and_tax_in_the_clinics_currency(
        self, world: World, patient: Patient
    ) -> None:
        session = price(world, amount="333.335", tax="8.875")
        test = price(world, "Allergy test", "45")
        out = invoice_for(world, patient, (session.pk, 3), (test.pk, 1))
        # 3 × 333.335 = 1000.005 → 1000.01; its tax 8.875 % → 88.75; the test 45.00, no tax.
        assert [(line["net"], line["tax"]) for line in out["lines"]] == [
            ("1000.01", "88.75"),
            ("45.00", "0.00"),
        ]
        assert (out["subtotal"], out["tax"], out["total"], out["due"]) == (
            "1045.01",
            "88.75",
            "1133.76",
            "1133.76",
        )
        assert out["currency"] == "USD" and out["number"] == 1

    def test_a_clinic_in_yen_rounds_to_whole_yen(self, world: World, patient: Patient) -> None:
        world.clinic.currency = "JPY"
        world.clinic.save()
        item = price(world, amount="1000.4", tax="10")
        out = invoice_for(world, Patient.objects.get(pk=patient.pk), (item.pk, 1))
        assert (out["subtotal"], out["tax"], out["total"]) == ("1000", "100", "1100")


class PaymentTests:
    def test_payments_credit_notes_and_refunds_move_the_balance(
        self, world: World, patient: Patient
    ) -> None:
        item = price(world)
        inv = invoice_for(world, patient, (item.pk, 2))
        desk, manager = api_for(world.front_desk), api_for(world.manager)
        r = desk.post(f"/invoices/{inv['id']}/payments", {"amount": "300", "method": "cash"})
        assert r.status_code == 201, r.content
        # More than is due is refused by name, with what is due in words.
        r = desk.post(f"/invoices/{inv['id']}/payments", {"amount": "800", "method": "cash"})
        assert problem_of(r, 422)["errors"][0]["message"] == "is more than the $700.00 due."
        # A card payment at the terminal needs the terminal's reference.
        r = desk.post(
            f"/invoices/{inv['id']}/payments", {"amount": "200", "method": "card_terminal"}
        )
        assert error_fields(r) == {"reference"}
        r = desk.post(
            f"/invoices/{inv['id']}/payments",
            {"amount": "200", "method": "card_terminal", "reference": "TRM-0042"},
        )
        card = r.json()["id"]
        # Only a manager credits and refunds.
        assert (
            desk.post(
                f"/invoices/{inv['id']}/credit-notes", {"amount": "100", "reason": "Goodwill"}
            ).status_code
            == 403
        )
        assert (
            desk.post(
                f"/payments/{card}/refunds", {"amount": "50", "reason": "Overcharged"}
            ).status_code
            == 403
        )
        r = manager.post(f"/invoices/{inv['id']}/credit-notes", {"amount": "600", "reason": "x"})
        assert "amount" in error_fields(r)  # only 500 is neither paid nor credited
        r = manager.post(
            f"/invoices/{inv['id']}/credit-notes", {"amount": "100", "reason": "Goodwill"}
        )
        assert r.status_code == 201 and r.json()["kind"] == "credit_note"
        assert r.json()["number"] == 2  # credit notes share the clinic's numbering
        r = manager.post(f"/payments/{card}/refunds", {"amount": "250", "reason": "Too much"})
        assert "amount" in error_fields(r)
        r = manager.post(f"/payments/{card}/refunds", {"amount": "50", "reason": "Overcharged"})
        assert r.status_code == 201 and r.json()["method"] == "card_terminal"
        account = desk.get(f"/patients/{patient.pk}/account").json()
        # 1000 invoiced − 300 − 200 paid − 100 credited + 50 refunded.
        assert account["balance"] == "450.00"
        [invoice, note] = sorted(account["invoices"], key=lambda i: i["number"])
        assert (invoice["paid"], invoice["credited"], invoice["due"]) == (
            "450.00",
            "100.00",
            "450.00",
        )
        assert [e["amount"] for e in account["ledger"]] == [
            "1000.00",
            "-300.00",
            "-200.00",
            "-100.00",
            "50.00",
        ]
        # Reading the account is recorded with the patient's id.
        assert AuditEvent.objects.filter(
            action="view", object_type="patients.Patient", patient_id=patient.pk
        ).exists()

    def test_an_issued_invoice_a_payment_and_a_ledger_entry_never_change(
        self, world: World, patient: Patient
    ) -> None:
        inv = Invoice.objects.get(pk=invoice_for(world, patient, (price(world).pk, 1))["id"])
        inv.total = Decimal("1")
        with pytest.raises(ValidationError):
            inv.save()
        payment = actions.record_payment(inv, Decimal("10"), "cash", user=world.front_desk)
        with pytest.raises(ValidationError):
            payment.save()
        entry = LedgerEntry.objects.filter(patient=patient).first()
        assert entry is not None
        with pytest.raises(ValidationError):
            entry.save()

    def test_another_clinic_and_a_patient_see_nothing(
        self, world: World, other: World, patient: Patient
    ) -> None:
        inv = invoice_for(world, patient, (price(world).pk, 1))
        payment = actions.record_payment(
            Invoice.objects.get(pk=inv["id"]), Decimal("10"), "cash", user=world.front_desk
        )
        them = api_for(other.manager)
        assert them.get(f"/invoices/{inv['id']}").status_code == 404
        assert them.get(f"/patients/{patient.pk}/account").status_code == 404
        r = them.post(f"/invoices/{inv['id']}/payments", {"amount": "1", "method": "cash"})
        assert r.status_code == 404
        assert (
            them.post(f"/payments/{payment.pk}/refunds", {"amount": "1", "reason": "x"}).status_code
            == 404
        )
        assert them.get("/prices").json() == []
        # A practitioner does not handle money; a patient's login reaches no staff endpoint.
        assert api_for(world.practitioner).get(f"/invoices/{inv['id']}").status_code == 403
        assert api_for(patient_login()).get(f"/invoices/{inv['id']}").status_code == 403
        assert Payment.objects.count() == 1

    def test_an_unknown_price_or_an_empty_line_is_named(
        self, world: World, patient: Patient
    ) -> None:
        desk = api_for(world.front_desk)
        r = desk.post(f"/patients/{patient.pk}/invoices", {"lines": [{"price": 999999}]})
        assert error_fields(r) == {"lines.0.price"}
        r = desk.post(f"/patients/{patient.pk}/invoices", {"lines": [{"quantity": 1}]})
        assert error_fields(r) == {"lines.0"}
        assert not Invoice.objects.exists()


class LedgerTests:
    def test_after_random_invoices_payments_credits_and_refunds_everything_reconciles(
        self, world: World
    ) -> None:
        rng = random.Random(15)
        patients = [
            Patient.objects.create(
                clinic=world.clinic,
                first_name="P",
                last_name=str(n),
                date_of_birth=dt.date(1990, 1, 1),
            )
            for n in range(4)
        ]
        items = [
            price(world, f"Item {n}", str(rng.randint(50, 900)), rng.choice(["0", "8.875", "20"]))
            for n in range(3)
        ]
        owed = {p.pk: Decimal("0") for p in patients}
        for _ in range(150):
            step = rng.choice(["invoice", "pay", "pay", "credit", "refund"])
            patient = rng.choice(patients)
            invoices = list(Invoice.objects.filter(patient=patient, kind="invoice"))
            try:
                if step == "invoice" or not invoices:
                    lines = [actions.LineInput.of(rng.choice(items), rng.randint(1, 3))]
                    inv = actions.issue_invoice(patient, lines, user=world.front_desk)
                    owed[patient.pk] += inv.total
                elif step == "pay":
                    inv = rng.choice(invoices)
                    amount = Decimal(rng.randint(1, 60000)) / 100
                    actions.record_payment(
                        inv,
                        amount,
                        rng.choice(["cash", "bank_transfer"]),
                        user=world.front_desk,
                        reference="R",
                    )
                    owed[patient.pk] -= amount
                elif step == "credit":
                    inv = rng.choice(invoices)
                    amount = Decimal(rng.randint(1, 30000)) / 100
                    actions.issue_credit_note(inv, amount, "Correction", user=world.manager)
                    owed[patient.pk] -= amount
                else:
                    paid = list(Payment.objects.filter(patient=patient, kind="payment"))
                    if not paid:
                        continue
                    amount = Decimal(rng.randint(1, 20000)) / 100
                    actions.refund(rng.choice(paid), amount, "Refund", user=world.manager)
                    owed[patient.pk] += amount
            except ValidationError:
                continue  # more than is due, credited or paid: refused, and nothing written
            for p in patients:
                assert actions.balance(p) == owed[p.pk]
        for inv in Invoice.objects.filter(kind="invoice"):
            figures = actions.amounts(inv)
            assert figures["due"] >= 0 and figures["paid"] >= 0
            assert figures["due"] == inv.total - figures["paid"] - figures["credited"]
        numbers = sorted(
            Invoice.objects.filter(clinic=world.clinic).values_list("number", flat=True)
        )
        assert numbers == list(range(1, len(numbers) + 1))
        close = reports.daily_close(
            world.clinic, timezone.localdate(timezone.now(), world.clinic.tz)
        )
        assert close.adds_up
        assert close.ledger_change == sum(owed.values())
        outstanding = {o.patient_id: o.balance for o in reports.outstanding(world.clinic)}
        assert outstanding == {pk: b for pk, b in owed.items() if b}

    def test_the_daily_close_counts_each_method_and_only_its_day(
        self, world: World, patient: Patient
    ) -> None:
        inv = Invoice.objects.get(pk=invoice_for(world, patient, (price(world).pk, 2))["id"])
        cash = actions.record_payment(inv, Decimal("100"), "cash", user=world.front_desk)
        actions.record_payment(
            inv, Decimal("250"), "card_terminal", user=world.front_desk, reference="T1"
        )
        actions.refund(cash, Decimal("40"), "Change", user=world.manager)
        today = timezone.localdate(timezone.now(), world.clinic.tz)
        r = api_for(world.manager).get(f"/reports/daily-close?date={today.isoformat()}")
        body = r.json()
        by = {
            m["method"]: (m["payments"], m["taken"], m["refunded"], m["net"])
            for m in body["methods"]
        }
        assert by == {
            "cash": (1, "100.00", "40.00", "60.00"),
            "card_terminal": (1, "250.00", "0.00", "250.00"),
            "bank_transfer": (0, "0.00", "0.00", "0.00"),
            "online_card": (0, "0.00", "0.00", "0.00"),
        }
        assert (body["taken"], body["invoiced"], body["adds_up"]) == ("310.00", "1000.00", True)
        yesterday = today - dt.timedelta(days=1)
        assert reports.daily_close(world.clinic, yesterday).taken == 0
        assert api_for(world.front_desk).get("/reports/daily-close").status_code == 403


@pytest.mark.skipif(connection.vendor != "postgresql", reason="races are proved on PostgreSQL")
class NumberingRaceTests:
    def test_invoices_issued_at_once_are_numbered_without_gaps_or_twins(
        self, shared_db: str
    ) -> None:
        seeded = run_script(CHILD, shared_db, "money", {})
        request = {
            "method": "POST",
            "path": f"/api/v1/patients/{seeded['patient']}/invoices",
            "token": seeded["token"],
            "body": {"lines": [{"price": seeded["price"]}]},
        }
        outputs = race_processes(CHILD, shared_db, [{"requests": [request] * 4} for _ in range(2)])
        results = [r for output in outputs for r in output]
        assert [r["status"] for r in results] == [201] * 8, results
        assert sorted(r["json"]["number"] for r in results) == list(range(1, 9))


class WebTests:
    def test_the_front_desk_invoices_and_takes_payments_and_the_manager_corrects(
        self, world: World, patient: Patient
    ) -> None:
        from tests.test_web import signed_in

        item = price(world, amount="500", tax="10")
        desk = signed_in(world.front_desk)
        chart = desk.get(f"/patients/{patient.pk}/").content.decode()
        assert f'href="/patients/{patient.pk}/account/"' in chart
        page = desk.get(f"/patients/{patient.pk}/account/").content.decode()
        assert "Nothing is owed either way." in page
        assert "Session, one area · $500.00" in page
        r = desk.post(
            f"/patients/{patient.pk}/account/",
            {
                "item_0": str(item.pk),
                "quantity_0": "2",
                **{f"quantity_{n}": "1" for n in (1, 2, 3)},
            },
        )
        invoice = Invoice.objects.get()
        assert r.status_code == 302 and r["Location"] == f"/invoices/{invoice.pk}/"
        page = desk.get(f"/invoices/{invoice.pk}/").content.decode()
        assert "$1,100.00 due" in page
        assert "Issue a credit note" not in page  # the front desk does not credit
        r = desk.post(
            f"/invoices/{invoice.pk}/payments/", {"amount": "100", "method": "card_terminal"}
        )
        assert r.status_code == 400
        assert r.context["pay_form"].errors == {
            "reference": ["give the terminal's or the bank's reference for this payment."]
        }
        r = desk.post(f"/invoices/{invoice.pk}/payments/", {"amount": "2000", "method": "cash"})
        assert r.context["pay_form"].errors == {"amount": ["is more than the $1,100.00 due."]}
        desk.post(f"/invoices/{invoice.pk}/payments/", {"amount": "600", "method": "cash"})
        assert (
            desk.post(
                f"/invoices/{invoice.pk}/credit-notes/", {"amount": "100", "reason": "x"}
            ).status_code
            == 403
        )
        manager = signed_in(world.manager)
        r = manager.post(
            f"/invoices/{invoice.pk}/credit-notes/", {"amount": "100", "reason": "Goodwill"}
        )
        assert r.status_code == 302
        cash = Payment.objects.get()
        r = manager.post(f"/payments/{cash.pk}/refunds/", {"amount": "50", "reason": "Change"})
        assert r.status_code == 302
        page = desk.get(f"/patients/{patient.pk}/account/").content.decode()
        # 1,100 − 600 − 100 + 50.
        assert "Owes the clinic <strong>$450.00</strong>." in page
        close = manager.get("/manage/daily-close/").content.decode()
        assert "The day adds up." in close
        assert "Packages sold and not yet given, today: 0 sessions, paid for $0.00." in close
        csv = manager.get("/manage/daily-close/?format=csv").content.decode().splitlines()
        assert csv[1].split(",")[1:6] == ["cash", "1", "600.00", "50.00", "550.00"]
        owed = manager.get("/manage/outstanding/").content.decode()
        assert f"{patient.first_name} {patient.last_name}" in owed and "$450.00" in owed

    def test_the_manager_keeps_the_price_list_and_others_are_kept_out(
        self, world: World, other: World, patient: Patient
    ) -> None:
        from tests.test_web import signed_in

        manager = signed_in(world.manager)
        r = manager.post(
            "/manage/prices/",
            {"kind": "consultation", "name": "Consultation", "amount": "-5", "tax_rate": "0"},
        )
        assert r.status_code == 400 and "amount" in r.context["form"].errors
        r = manager.post(
            "/manage/prices/",
            {
                "kind": "consultation",
                "name": "Consultation",
                "amount": "80",
                "tax_rate": "0",
                "active": "on",
            },
        )
        item = PriceItem.objects.get(name="Consultation")
        manager.post(
            f"/manage/prices/{item.pk}/",
            {
                "kind": "consultation",
                "name": "Consultation",
                "amount": "90",
                "tax_rate": "0",
                "active": "on",
            },
        )
        assert PriceItem.objects.get(pk=item.pk).amount == Decimal("90")
        assert signed_in(world.front_desk).get("/manage/prices/").status_code == 403
        assert (
            signed_in(world.practitioner).get(f"/patients/{patient.pk}/account/").status_code == 403
        )
        assert signed_in(other.manager).get(f"/patients/{patient.pk}/account/").status_code == 404
        assert signed_in(other.manager).get(f"/manage/prices/{item.pk}/").status_code == 404
        inv = actions.issue_invoice(patient, [actions.LineInput.of(item)], user=world.front_desk)
        assert signed_in(other.manager).get(f"/invoices/{inv.pk}/").status_code == 404
        assert signed_in(world.practitioner).get(f"/invoices/{inv.pk}/").status_code == 403


class DocumentTests:
    def test_an_invoice_prints_and_is_emailed_with_its_pdf(
        self, world: World, other: World, patient: Patient, mail: Mailbox
    ) -> None:
        import io

        from pypdf import PdfReader

        from tests.test_web import signed_in

        inv = invoice_for(world, patient, (price(world, tax="8.875").pk, 2))
        desk = signed_in(world.front_desk)
        r = desk.get(f"/invoices/{inv['id']}.pdf")
        assert r.status_code == 200 and r["Content-Type"] == "application/pdf"
        text = " ".join((p.extract_text() or "") for p in PdfReader(io.BytesIO(r.content)).pages)
        for words in ("Invoice 1", "Session, one area", "$500.00", "8.875 %", "$1,088.75", "Due"):
            assert words in text, words
        assert AuditEvent.objects.filter(action="export", object_type="billing.Invoice").exists()
        r = desk.post(f"/invoices/{inv['id']}/email/")
        assert r.status_code == 302
        # Sent through SMTP to a real server on loopback, with the PDF attached.
        [sent] = mail.wait_for(1)
        assert sent.rcpt_tos == [patient.email]
        assert "Invoice 1" in sent.message["Subject"]
        [attached] = list(sent.message.iter_attachments())
        assert attached.get_filename() == "invoice-1.pdf"
        assert attached.get_content_type() == "application/pdf"
        assert attached.get_content().startswith(b"%PDF")
        # Another clinic and a practitioner get nothing.
        assert signed_in(other.manager).get(f"/invoices/{inv['id']}.pdf").status_code == 404
        assert signed_in(world.practitioner).get(f"/invoices/{inv['id']}.pdf").status_code == 403


class PackageTests:
    def test_a_package_is_invoiced_and_each_charted_session_uses_one(
        self, world: World, patient: Patient
    ) -> None:
        from tests.conftest import ago
        from tests.test_courses import chart, ready_course

        course = ready_course(world, patient, ago(days=30))
        desk = api_for(world.front_desk)
        r = desk.post(f"/courses/{course.pk}/packages", {"sessions": 2, "price": "900"})
        assert r.status_code == 201, r.content
        assert (r.json()["left"], r.json()["value_left"]) == (2, "900.00")
        invoice = Invoice.objects.get(pk=r.json()["invoice"])
        assert invoice.total == Decimal("900")
        assert invoice.lines.get().description.startswith("Package of 2 sessions: ")
        # Three weekly sessions are charted; the package covers the first two.
        for days in (21, 14, 7):
            chart(world, course, ago(days=days))
        account = desk.get(f"/patients/{patient.pk}/account").json()
        [package] = account["packages"]
        assert (package["used"], package["left"], package["value_left"]) == (2, 0, "0.00")
        assert account["balance"] == "900.00"

    def test_the_package_liability_is_the_value_of_sessions_not_given(
        self, world: World, patient: Patient
    ) -> None:
        from mesoclinic.billing import packages
        from tests.conftest import ready_course

        course = ready_course(api_for(world.practitioner), world, patient)
        r = api_for(world.front_desk).post(
            f"/courses/{course['id']}/packages", {"sessions": 3, "price": "1000"}
        )
        assert r.status_code == 201
        assert packages.liability(world.clinic) == (3, Decimal("1000.00"))
        body = api_for(world.manager).get("/reports/daily-close").json()
        assert body["package_liability"] == {"sessions": 3, "value": "1000.00"}
        # A practitioner does not sell packages.
        r = api_for(world.practitioner).post(
            f"/courses/{course['id']}/packages", {"sessions": 3, "price": "1000"}
        )
        assert r.status_code == 403

    def test_the_front_desk_sells_a_package_from_the_account_page(
        self, world: World, patient: Patient
    ) -> None:
        from tests.conftest import ago
        from tests.test_courses import ready_course
        from tests.test_web import signed_in

        course = ready_course(world, patient, ago(days=3))
        desk = signed_in(world.front_desk)
        page = desk.get(f"/patients/{patient.pk}/account/").content.decode()
        assert "Sell a course as a package" in page and "No package sold." in page
        r = desk.post(
            f"/patients/{patient.pk}/packages/",
            {"course": str(course.pk), "sessions": "0", "price": "900"},
        )
        assert r.status_code == 400 and "sessions" in r.context["package_form"].errors
        r = desk.post(
            f"/patients/{patient.pk}/packages/",
            {"course": str(course.pk), "sessions": "10", "price": "4500"},
        )
        package_invoice = Invoice.objects.get()
        assert r["Location"] == f"/invoices/{package_invoice.pk}/"
        page = desk.get(f"/patients/{patient.pk}/account/").content.decode()
        assert "10 for $4,500.00" in page
