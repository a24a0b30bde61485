"""Stock and vials: every injection and allergy test draws its volume from a vial of its lot,
waste and counts carry a reason, the ledger always adds up, and the two vial gates (a
multi-dose vial past its beyond-use time, a single-dose vial for a second patient) refuse on
every write path, never overridably."""

from __future__ import annotations

import datetime as dt
import random
import sys
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from mesoclinic.courses.models import Session, SessionInjection, SessionRefused
from mesoclinic.formulary import stock
from mesoclinic.formulary.models import BEYOND_USE_DAYS, Lot, StockMovement, Vial
from mesoclinic.patients.models import Patient
from tests.conftest import (
    World,
    ago,
    api_for,
    error_fields,
    iso,
    problem_of,
    ready_course,
    session_body,
)
from tests.scheduling_fixtures import race_processes, run_script

CHILD = [sys.executable, "-m", "tests.booking_race_child"]


def another_patient(world: World, n: int = 2) -> Patient:
    return Patient.objects.create(
        clinic=world.clinic,
        first_name="Bea",
        last_name=f"Other {n}",
        date_of_birth=dt.date(1985, 3, 2),
    )


def on_hand(lot: Lot) -> stock.LotStock:
    return stock.on_hand([Lot.objects.select_related("product").get(pk=lot.pk)])[lot.pk]


def chart_via_api(world: World, course_id: int, **injection: Any) -> Any:
    body = session_body(world.lot, ago(hours=1))
    body["injections"] = [{"area": "thighs", "lot": world.lot.pk, "volume_ml": "2.5", **injection}]
    return api_for(world.practitioner).post(f"/courses/{course_id}/sessions", body)


class DrawDownTests:
    def test_a_session_and_an_allergy_test_draw_the_stock_from_their_vials(
        self, world: World, patient: Patient
    ) -> None:
        manager = api_for(world.manager)
        r = manager.post(f"/lots/{world.lot.pk}/stock", {"kind": "received", "vials": 10})
        assert r.status_code == 201, r.content
        assert (r.json()["unopened_vials"], r.json()["ml"]) == (10, "100.00")
        # The allergy test opens a single-dose vial of the lot and draws 0.1 mL from it.
        course = ready_course(api_for(world.practitioner), world, patient)
        # The session opens a second one: a single-dose vial is never shared between visits.
        r = chart_via_api(world, course["id"])
        assert r.status_code == 201, r.content
        [injection] = r.json()["injections"]
        assert injection["vial_number"] == 2
        from tests.test_web import signed_in

        page = signed_in(world.practitioner).get(f"/sessions/{r.json()['id']}/").content.decode()
        assert f"lot {world.lot.lot_number} · vial 2" in page
        found = on_hand(world.lot)
        assert found.unopened == 8
        assert found.ml == Decimal("97.40")
        assert [(o.vial.number, o.left_ml) for o in found.open_vials] == [
            (1, Decimal("9.90")),
            (2, Decimal("7.50")),
        ]
        assert Vial.objects.get(lot=world.lot, number=2).patient_id == patient.pk
        # The lot's trace names the vial each patient received from, on the page and in the CSV.
        r = api_for(world.practitioner).get(f"/lots/{world.lot.pk}/patients")
        [row] = r.json()["patients"]
        assert [(e["kind"], e["vial"]) for e in row["exposures"]] == [
            ("allergy_test", 1),
            ("session", 2),
        ]
        csv = signed_in(world.manager).get(f"/manage/lots/{world.lot.pk}/patients.csv")
        lines = csv.content.decode().splitlines()
        assert lines[0].endswith(",volume_ml,vial")
        assert [line.rsplit(",", 1)[1] for line in lines[1:]] == ["1", "2"]
        kinds = list(
            StockMovement.objects.filter(lot=world.lot)
            .order_by("id")
            .values_list("kind", "vials", "ml")
        )
        assert kinds == [
            ("received", 10, Decimal("100.00")),
            ("opened", -1, Decimal("0.00")),
            ("allergy_test", 0, Decimal("-0.10")),
            ("opened", -1, Decimal("0.00")),
            ("session", 0, Decimal("-2.50")),
        ]

    def test_a_multi_dose_vial_serves_the_next_patients_until_it_is_closed(
        self, world: World, patient: Patient
    ) -> None:
        # The two allergy tests draw lidocaine from one vial, opened for the first.
        ready_course(api_for(world.practitioner), world, patient)
        ready_course(api_for(world.practitioner), world, another_patient(world))
        vials = Vial.objects.filter(lot=world.lidocaine_lot)
        assert vials.count() == 1
        [vial] = vials
        assert vial.beyond_use_at == vial.opened_at + dt.timedelta(days=BEYOND_USE_DAYS)
        assert stock.left_in(vial) == Decimal("9.80")
        # Closed as contaminated: what is left is waste, with the reason.
        r = api_for(world.practitioner).post(
            f"/vials/{vial.pk}/close", {"reason": "contaminated", "note": "Dropped"}
        )
        assert r.status_code == 200, r.content
        waste = StockMovement.objects.get(vial=vial, kind="waste")
        assert (waste.ml, waste.reason) == (Decimal("-9.80"), "Contaminated or damaged. Dropped")
        again = api_for(world.practitioner).post(f"/vials/{vial.pk}/close", {"reason": "used_up"})
        assert "vial" in error_fields(again)


class VialGateTests:
    def test_a_vial_past_its_beyond_use_time_is_refused_and_cannot_be_overridden(
        self, world: World, patient: Patient
    ) -> None:
        course = ready_course(api_for(world.practitioner), world, patient)
        old = stock.open_vial(world.lidocaine_lot, user=world.practitioner, at=ago(days=29))
        api = api_for(world.practitioner)
        body = session_body(world.lidocaine_lot, ago(hours=1))
        body["injections"][0]["vial"] = old.pk
        r = api.post(f"/courses/{course['id']}/sessions", body)
        reasons = problem_of(r, 409)["reasons"]
        assert [(x["code"], x["overridable"]) for x in reasons] == [("vial_beyond_use", False)]
        assert f"Vial {old.number} of {world.lidocaine_lot}" in reasons[0]["message"]
        overridden = api.post(
            f"/courses/{course['id']}/sessions",
            {**body, "override_codes": ["vial_beyond_use"], "override_reason": "Only vial"},
        )
        assert "override_codes" in error_fields(overridden)
        assert not Session.objects.filter(course_id=course["id"]).exists()
        # Left to choose, charting takes an open vial still in its time, or opens a new one.
        del body["injections"][0]["vial"]
        r = api.post(f"/courses/{course['id']}/sessions", body)
        assert r.status_code == 201, r.content
        assert r.json()["injections"][0]["vial"] != old.pk

    def test_an_allergy_test_from_a_vial_past_its_time_is_refused(
        self, world: World, patient: Patient
    ) -> None:
        course = ready_course(api_for(world.practitioner), world, patient)
        old = stock.open_vial(world.lidocaine_lot, user=world.practitioner, at=ago(days=40))
        r = api_for(world.practitioner).post(
            f"/courses/{course['id']}/allergy-tests",
            {
                "given_at": iso(ago(hours=1)),
                "injections": [
                    {"lot": world.lot.pk, "site": "left inner forearm"},
                    {"lot": world.lidocaine_lot.pk, "site": "right forearm", "vial": old.pk},
                ],
            },
        )
        assert [x["code"] for x in problem_of(r, 409)["reasons"]] == ["vial_beyond_use"]

    def test_a_single_dose_vial_is_refused_for_a_second_patient(
        self, world: World, patient: Patient
    ) -> None:
        first = ready_course(api_for(world.practitioner), world, patient)
        second = ready_course(api_for(world.practitioner), world, another_patient(world))
        r = chart_via_api(world, first["id"])
        assert r.status_code == 201, r.content
        used = r.json()["injections"][0]["vial"]
        r = chart_via_api(world, second["id"], vial=used)
        reasons = problem_of(r, 409)["reasons"]
        assert [(x["code"], x["overridable"]) for x in reasons] == [("single_dose_reused", False)]
        assert "already used for another patient" in reasons[0]["message"]

    def test_the_model_save_path_refuses_a_vial_past_its_time_too(
        self, world: World, patient: Patient
    ) -> None:
        """An injection saved without the charting action (the admin's path) meets the gate."""
        course = ready_course(api_for(world.practitioner), world, patient)
        r = chart_via_api(world, course["id"])
        session = Session.objects.get(pk=r.json()["id"])
        old = stock.open_vial(world.lidocaine_lot, user=world.practitioner, at=ago(days=30))
        with pytest.raises(SessionRefused) as exc:
            SessionInjection(
                session=session,
                area="thighs",
                lot=world.lidocaine_lot,
                vial=old,
                volume_ml=Decimal("1"),
            ).save()
        assert [r.code for r in exc.value.refusals] == ["vial_beyond_use"]

    def test_a_closed_vial_or_another_lots_vial_is_refused_by_name(
        self, world: World, patient: Patient
    ) -> None:
        course = ready_course(api_for(world.practitioner), world, patient)
        lido = stock.open_vial(world.lidocaine_lot, user=world.practitioner, at=ago(days=2))
        assert "vial" in error_fields(chart_via_api(world, course["id"], vial=lido.pk))
        mine = stock.open_vial(world.lot, user=world.practitioner, at=ago(days=2))
        stock.close_vial(mine, "used_up", user=world.practitioner)
        assert "vial" in error_fields(chart_via_api(world, course["id"], vial=mine.pk))

    def test_another_clinics_vial_is_unknown(
        self, world: World, other: World, patient: Patient
    ) -> None:
        course = ready_course(api_for(world.practitioner), world, patient)
        theirs = stock.open_vial(other.lot, user=other.practitioner)
        r = chart_via_api(world, course["id"], vial=theirs.pk)
        assert "injections" in error_fields(r)
        assert (
            api_for(world.practitioner)
            .post(f"/vials/{theirs.pk}/close", {"reason": "used_up"})
            .status_code
            == 404
        )
        assert api_for(world.manager).get(f"/lots/{other.lot.pk}/stock").status_code == 404


class LedgerTests:
    def test_waste_and_counts_need_a_reason_and_a_count_reconciles_the_shelf(
        self, world: World
    ) -> None:
        api = api_for(world.manager)
        api.post(f"/lots/{world.lot.pk}/stock", {"kind": "received", "vials": 6})
        r = api.post(f"/lots/{world.lot.pk}/stock", {"kind": "waste", "ml": "2"})
        assert error_fields(r) == {"reason"}
        r = api.post(f"/lots/{world.lot.pk}/stock", {"kind": "count", "vials": 4})
        assert "reason" in error_fields(r)
        r = api.post(
            f"/lots/{world.lot.pk}/stock",
            {"kind": "count", "vials": 4, "reason": "Counted by the manager"},
        )
        assert (r.json()["unopened_vials"], r.json()["ml"]) == (4, "40.00")
        # The same count again changes nothing.
        r = api.post(
            f"/lots/{world.lot.pk}/stock", {"kind": "count", "vials": 4, "reason": "Recount"}
        )
        assert StockMovement.objects.filter(lot=world.lot, kind="count").count() == 1
        assert (
            api_for(world.practitioner)
            .post(f"/lots/{world.lot.pk}/stock", {"kind": "received", "vials": 1})
            .status_code
            == 403
        )

    def test_after_any_sequence_of_changes_the_stock_is_the_sum_of_what_happened(
        self, world: World
    ) -> None:
        """Random receipts, openings, draws, waste, closings and counts: the ledger's sums
        equal a plain count of vials and mL kept beside it."""
        rng = random.Random(15)
        lot = world.lidocaine_lot
        per_vial = lot.product.vial_ml
        unopened, ml = 0, Decimal("0")
        left: dict[int, Decimal] = {}
        user = world.manager
        for _ in range(120):
            step = rng.choice(["receive", "open", "draw", "waste", "close", "count"])
            if step == "receive":
                n = rng.randint(1, 5)
                stock.receive(lot, n, user=user)
                unopened, ml = unopened + n, ml + n * per_vial
            elif step == "open":
                vial = stock.open_vial(lot, user=user)
                unopened -= 1
                left[vial.pk] = per_vial
            elif step == "draw" and left:
                pk = rng.choice(sorted(left))
                vial = Vial.objects.select_related("lot__product").get(pk=pk)
                amount = Decimal(rng.randint(1, 40)) / 10
                stock.draw(
                    {lot.pk: stock.Draw(lot, vial)},
                    [(lot.pk, amount)],
                    patient_id=None,  # type: ignore[arg-type]
                    moment=vial.opened_at,
                    user=user,
                )
                left[pk] -= amount
                ml -= amount
            elif step == "waste":
                amount = Decimal(rng.randint(1, 20)) / 10
                stock.record_waste(lot, amount, "Spilled", user=user)
                ml -= amount
            elif step == "close" and left:
                pk = rng.choice(sorted(left))
                vial = Vial.objects.select_related("lot__product").get(pk=pk)
                stock.close_vial(vial, "used_up", user=user)
                ml -= max(left.pop(pk), Decimal("0"))
            elif step == "count":
                counted = max(unopened + rng.randint(-2, 2), 0)
                stock.record_count(lot, counted, "Shelf count", user=user)
                ml += (counted - unopened) * per_vial
                unopened = counted
            found = on_hand(lot)
            assert (found.unopened, found.ml) == (unopened, ml)
            assert {o.vial.pk: o.left_ml for o in found.open_vials} == {
                pk: max(v, Decimal("0")) for pk, v in left.items()
            }


@pytest.mark.skipif(connection.vendor != "postgresql", reason="races are proved on PostgreSQL")
class SingleDoseRaceTests:
    def test_two_patients_charted_at_once_from_one_single_dose_vial_get_it_once(
        self, shared_db: str
    ) -> None:
        seeded = run_script(CHILD, shared_db, "vials", {})
        requests = [
            {
                "method": "POST",
                "path": f"/api/v1/courses/{course}/sessions",
                "token": seeded["token"],
                "body": {
                    **session_body(Lot(pk=seeded["lot"]), ago(hours=1)),
                    "injections": [
                        {
                            "area": "thighs",
                            "lot": seeded["lot"],
                            "volume_ml": "2.5",
                            "vial": seeded["vial"],
                        }
                    ],
                },
            }
            for course in seeded["courses"]
        ]
        [results] = race_processes(CHILD, shared_db, [{"requests": requests}])
        assert sorted(r["status"] for r in results) == [201, 409], results
        refused = next(r for r in results if r["status"] == 409)
        assert [x["code"] for x in refused["json"]["reasons"]] == ["single_dose_reused"]


class LotPageTests:
    def test_the_manager_receives_counts_opens_and_closes_from_the_lot_page(
        self, world: World
    ) -> None:
        from tests.test_web import signed_in

        web = signed_in(world.manager)
        page = web.get(f"/manage/lots/{world.lidocaine_lot.pk}/").content.decode()
        assert "No delivery or count of this lot is recorded yet" in page
        r = web.post(
            f"/manage/lots/{world.lidocaine_lot.pk}/stock/",
            {"stock-kind": "received", "stock-amount": "5"},
        )
        assert r.status_code == 302
        # A count without a note, and half a vial, are refused on the form, naming the field.
        r = web.post(
            f"/manage/lots/{world.lidocaine_lot.pk}/stock/",
            {"stock-kind": "count", "stock-amount": "4.5"},
        )
        assert r.status_code == 400
        assert r.context["stock_form"].errors.keys() == {"amount", "reason"}
        web.post(f"/manage/lots/{world.lidocaine_lot.pk}/vials/")
        [vial] = Vial.objects.filter(lot=world.lidocaine_lot)
        page = web.get(f"/manage/lots/{world.lidocaine_lot.pk}/").content.decode()
        assert "<strong>4</strong> unopened vials and <strong>50.00 mL</strong>" in page
        assert "Close the vial" in page
        r = web.post(f"/manage/vials/{vial.pk}/close/", {"reason": "other", "note": ""})
        assert Vial.objects.get(pk=vial.pk).closed_at is None
        web.post(f"/manage/vials/{vial.pk}/close/", {"reason": "used_up"})
        assert Vial.objects.get(pk=vial.pk).closed_reason == "used_up"
        page = web.get(f"/manage/lots/{world.lidocaine_lot.pk}/").content.decode()
        assert "No vial of this lot is open" in page
        assert "<strong>40.00 mL</strong>" in page

    def test_only_the_clinics_manager_reaches_the_stock_pages(
        self, world: World, other: World
    ) -> None:
        from tests.test_web import signed_in

        vial = stock.open_vial(world.lot, user=world.practitioner)
        for user, status in ((world.practitioner, 403), (other.manager, 404)):
            web = signed_in(user)
            got = web.post(
                f"/manage/lots/{world.lot.pk}/stock/",
                {"stock-kind": "received", "stock-amount": "3"},
            )
            assert got.status_code == status
            assert web.post(f"/manage/lots/{world.lot.pk}/vials/").status_code == status
            got = web.post(f"/manage/vials/{vial.pk}/close/", {"reason": "used_up"})
            assert got.status_code == status
        assert not StockMovement.objects.filter(kind="received").exists()
        assert Vial.objects.filter(lot=world.lot).count() == 1
        assert Vial.objects.get(pk=vial.pk).closed_at is None


class TodayAlertTests:
    def test_today_names_vials_near_their_time_and_products_to_reorder(self, world: World) -> None:
        from tests.test_web import signed_in

        page = signed_in(world.practitioner).get("/today/").content.decode()
        assert "No vial is near its beyond-use date and nothing needs reordering." in page
        stock.receive(world.lidocaine_lot, 3, user=world.manager)
        world.lidocaine_product.reorder_vials = 2
        world.lidocaine_product.save()
        past = stock.open_vial(world.lidocaine_lot, user=world.manager, at=ago(days=29))
        soon = stock.open_vial(world.lidocaine_lot, user=world.manager, at=ago(days=26))
        stock.open_vial(world.lidocaine_lot, user=world.manager, at=ago(days=1))
        page = signed_in(world.practitioner).get("/today/").content.decode()
        assert f"{past.label}:" in page and "Past its beyond-use date" in page
        assert f"{soon.label}:" in page and "Use by" in page
        assert "Vial 3 of" not in page
        assert 'Lidocaine 1%: <span class="tag warn">Reorder</span> 0 unopened vials' in page
        # The manager's rows lead to the lot's page, where the vial is closed.
        page = signed_in(world.manager).get("/today/").content.decode()
        assert f'href="/manage/lots/{world.lidocaine_lot.pk}/"' in page
