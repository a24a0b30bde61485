"""The stock's value at cost: a delivery records what one vial cost, in the clinic's currency,
as an exact decimal; the manager's stock page, its CSV and `GET /stock` give each product's
unopened vials, mL in open vials, value and reorder level over the lots that may be used. Costs
are the managers' alone."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from mesoclinic.formulary import stock
from mesoclinic.formulary.models import Lot, StockMovement
from tests.conftest import World, ago, api_for, error_fields, problem_of
from tests.test_web import signed_in


def draw(lot: Lot, ml: str, user: Any) -> None:
    """Open a vial of the lot and draw `ml` from it, as charting would."""
    vial = stock.open_vial(lot, user=user)
    stock.draw(
        {lot.pk: stock.Draw(lot, vial)},
        [(lot.pk, Decimal(ml))],
        patient_id=None,  # type: ignore[arg-type]
        moment=vial.opened_at,
        user=user,
    )


def stocked(world: World) -> Lot:
    """The clinic's stock, with its costs:

    - Lipo mix lot L100 (10 mL vials): 10 vials at $20.00; one opened, 2.5 mL drawn from it.
    - Lipo mix lot L200: 3 vials, no cost recorded.
    - Lidocaine lot LD1: 5 vials at $4.20 and 5 at $5.00 (a vial costs $4.60 on average); one
      opened 29 days ago, past its beyond-use time.
    - The expired lot, and a recalled lot, with costly vials that count for nothing.
    Returns the lot without a cost."""
    web = signed_in(world.manager)
    r = web.post(
        f"/manage/lots/{world.lot.pk}/stock/",
        {"stock-kind": "received", "stock-amount": "10", "stock-vial_cost": "20"},
    )
    assert r.status_code == 302
    draw(world.lot, "2.5", world.practitioner)
    uncosted = Lot.objects.create(
        product=world.product, lot_number="L200", expires_on=world.lot.expires_on
    )
    stock.receive(uncosted, 3, user=world.manager)
    api = api_for(world.manager)
    for vials, cost in ((5, "4.20"), (5, "5")):
        r = api.post(
            f"/lots/{world.lidocaine_lot.pk}/stock",
            {"kind": "received", "vials": vials, "vial_cost": cost},
        )
        assert r.status_code == 201, r.content
    stock.open_vial(world.lidocaine_lot, user=world.manager, at=ago(days=29))
    world.lidocaine_product.reorder_vials = 9
    world.lidocaine_product.save()
    stock.receive(world.expired_lot, 4, user=world.manager, vial_cost=Decimal("100"))
    recalled = Lot.objects.create(
        product=world.product,
        lot_number="L-RECALLED",
        expires_on=world.lot.expires_on,
        recalled=True,
        recall_reason="Supplier notice.",
    )
    stock.receive(recalled, 4, user=world.manager, vial_cost=Decimal("100"))
    return uncosted


class StockValueTests:
    def test_each_product_is_valued_at_what_its_deliveries_cost(self, world: World) -> None:
        uncosted = stocked(world)
        page = signed_in(world.manager).get("/manage/stock/")
        assert page.status_code == 200
        text = page.content.decode()
        # Lipo mix: 9 unopened vials at $20.00, and 7.50 mL left of a 10 mL vial: $195.00.
        # Lidocaine: 9 unopened at $4.60; its open vial is past its time and worth nothing.
        assert "The stock is worth <strong>$236.40</strong> at cost." in text
        assert "$195.00" in text and "$41.40" in text and "$4.60" in text
        assert "1 lot has stock but no delivery that recorded what a vial cost" in text
        assert f'href="/manage/lots/{uncosted.pk}/"' in text
        for left_out in (world.expired_lot.lot_number, "L-RECALLED"):
            assert left_out not in text
        csv = signed_in(world.manager).get("/manage/stock/?format=csv")
        assert csv["Content-Type"].startswith("text/csv")
        assert csv.content.decode().splitlines() == [
            "product,supplier,unopened_vials,ml_in_open_vials,value_at_cost,currency,"
            "reorder_at_vials,reorder_now,lots_without_cost",
            "Lidocaine 1%,Acme Pharma,9,10.00,41.40,USD,9,yes,0",
            "Lipo mix,Acme Pharma,12,7.50,195.00,USD,0,no,1",
        ]

    def test_the_api_gives_the_same_figures(self, world: World) -> None:
        stocked(world)
        r = api_for(world.manager).get("/stock")
        assert r.status_code == 200, r.content
        body = r.json()
        assert (body["currency"], body["value"], body["lots_without_cost"]) == ("USD", "236.40", 1)
        lido, lipo = body["products"]
        assert (lido["name"], lido["unopened_vials"], lido["value"], lido["low"]) == (
            "Lidocaine 1%",
            9,
            "41.40",
            True,
        )
        assert [(x["lot_number"], x["vial_cost"], x["value"]) for x in lipo["lots"]] == [
            ("L100", "20.00", "195.00"),
            ("L200", None, None),
        ]

    def test_what_was_bought_and_not_used_is_worth_what_was_paid(self, world: World) -> None:
        # 10 vials at $20.00 and 5 at $25.00: 15 vials that cost $325.00, whatever the average.
        stock.receive(world.lot, 10, user=world.manager, vial_cost=Decimal("20"))
        stock.receive(world.lot, 5, user=world.manager, vial_cost=Decimal("25"))
        [found] = stock.lot_values([world.lot], "USD", ago(seconds=0)).values()
        assert (found.value, found.vial_cost) == (Decimal("325.00"), Decimal("21.67"))

    def test_a_lot_page_shows_its_cost_and_each_deliverys(self, world: World) -> None:
        stock.receive(world.lot, 4, user=world.manager, vial_cost=Decimal("12.5"))
        page = signed_in(world.manager).get(f"/manage/lots/{world.lot.pk}/").content.decode()
        assert "A vial cost <strong>$12.50</strong>" in page
        assert "worth <strong>$50.00</strong> at cost" in page
        assert "Received, at $12.50 a vial" in page


class CostInputTests:
    def test_the_lot_page_refuses_a_cost_that_is_not_a_deliverys_or_not_exact(
        self, world: World
    ) -> None:
        web = signed_in(world.manager)
        url = f"/manage/lots/{world.lot.pk}/stock/"
        for data, message in (
            (
                {"stock-kind": "count", "stock-amount": "2", "stock-reason": "Shelf"},
                "Only a delivery has a cost; leave it empty.",
            ),
            ({"stock-kind": "received", "stock-amount": "2"}, "at most 2 decimal places"),
        ):
            r = web.post(url, {**data, "stock-vial_cost": "1.005"})
            assert r.status_code == 400
            assert r.context["stock_form"].errors.keys() == {"vial_cost"}
            assert message in r.content.decode()
        assert not StockMovement.objects.filter(lot=world.lot).exists()

    def test_bad_costs_are_problems_naming_the_field(self, world: World) -> None:
        api = api_for(world.manager)
        url = f"/lots/{world.lot.pk}/stock"
        for body in (
            {"kind": "received", "vials": 2, "vial_cost": "abc"},
            {"kind": "received", "vials": 2, "vial_cost": "-1"},
            {"kind": "received", "vials": 2, "vial_cost": "1.0001"},
            {"kind": "received", "vials": 2, "vial_cost": "12.345"},
            {"kind": "waste", "ml": "1", "reason": "Spilled", "vial_cost": "2"},
        ):
            assert error_fields(api.post(url, body)) == {"vial_cost"}, body
        r = api.post(url, {"kind": "received", "vials": 2, "vial_cost": "12.345"})
        assert "a cost in USD has at most 2 decimal places" in problem_of(r, 422)["detail"]
        # A clinic in yen counts whole yen.
        world.clinic.currency = "JPY"
        world.clinic.save()
        r = api.post(url, {"kind": "received", "vials": 2, "vial_cost": "1200.5"})
        assert "a cost in JPY is a whole number" in problem_of(r, 422)["detail"]
        assert (
            api.post(url, {"kind": "received", "vials": 2, "vial_cost": "1200"}).status_code == 201
        )
        [delivery] = StockMovement.objects.filter(lot=world.lot)
        assert delivery.vial_cost == Decimal("1200")


class StockAccessTests:
    def test_only_a_manager_sees_the_costs_and_only_their_clinics(
        self, world: World, other: World
    ) -> None:
        stock.receive(world.lot, 4, user=world.manager, vial_cost=Decimal("12.5"))
        for user in (world.practitioner, world.front_desk):
            web = signed_in(user)
            assert web.get("/manage/stock/").status_code == 403
            assert web.get("/manage/stock/?format=csv").status_code == 403
            assert problem_of(api_for(user).get("/stock"), 403)
        # Another clinic's manager sees their own stock, and not this clinic's lots or costs.
        page = signed_in(other.manager).get("/manage/stock/").content.decode()
        assert "o_Lipo mix" in page and f'"/manage/lots/{world.lot.pk}/"' not in page
        assert "$12.50" not in page and "$50.00" not in page
        theirs = api_for(other.manager).get("/stock").json()
        assert [p["name"] for p in theirs["products"]] == ["o_Lidocaine 1%", "o_Lipo mix"]
        assert theirs["value"] == "0.00"
        assert signed_in(other.manager).get(f"/manage/lots/{world.lot.pk}/").status_code == 404
        r = api_for(other.manager).post(
            f"/lots/{world.lot.pk}/stock", {"kind": "received", "vials": 1, "vial_cost": "1"}
        )
        assert problem_of(r, 404)
        assert StockMovement.objects.filter(lot=world.lot).count() == 1
