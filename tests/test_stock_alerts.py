"""The day's stock alerts by email: what Today shows under "Vials and stock" and the lots near
or past their expiry date go to the clinic's managers in one email a day, in whole sentences,
through a real SMTP server on loopback; once per clinic and day however many workers run, and
not at all when nothing needs attention."""

from __future__ import annotations

import datetime as dt
import io
import textwrap
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from mesoclinic.accounts.models import Membership
from mesoclinic.formulary import alerts, stock
from mesoclinic.formulary.models import Lot, StockAlertEmail
from tests.conftest import World, make_user
from tests.scheduling_fixtures import race_processes, run_script
from tests.test_reminders import Mailbox, _mail
from tests.test_reminders import mail as mail  # noqa: F401 - a fixture
from tests.test_reminders import smtp_server as smtp_server  # noqa: F401 - a fixture
from tests.test_words import problems


def at_local(world: World, hour: int, days: int = 0) -> dt.datetime:
    """`hour` o'clock on the clinic's clock, `days` from its today."""
    today = timezone.now().astimezone(world.clinic.tz).date() + dt.timedelta(days=days)
    return dt.datetime.combine(today, dt.time(hour), tzinfo=world.clinic.tz)


@pytest.fixture
def clock(world: World) -> Iterator[Any]:
    """Ten o'clock this morning, on the clinic's clock: after STOCK_ALERTS_HOUR."""
    with time_machine.travel(at_local(world, 10), tick=False) as traveller:
        yield traveller


@pytest.fixture
def managers(world: World) -> list[str]:
    """The clinic's two managers have addresses, and so does its practitioner, who is not
    told."""
    deputy = make_user(world.clinic, "deputy", Membership.Role.MANAGER)
    for user, address in (
        (world.manager, "boss@example.com"),
        (deputy, "deputy@example.com"),
        (world.practitioner, "maria@example.com"),
    ):
        user.email = address
        user.save()
    return ["boss@example.com", "deputy@example.com"]


def worker_tick() -> str:
    out = io.StringIO()
    call_command("worker", "--once", stdout=out)
    return out.getvalue()


def needing_attention(world: World) -> None:
    """A vial past its beyond-use time and one near it, a product to reorder, a lot near its
    expiry date and an expired lot with vials left."""
    lido = world.lidocaine_lot
    stock.receive(lido, 4, user=world.manager)
    stock.open_vial(lido, user=world.manager, at=timezone.now() - dt.timedelta(days=29))
    stock.open_vial(lido, user=world.manager, at=timezone.now() - dt.timedelta(days=26))
    world.lidocaine_product.reorder_vials = 2
    world.lidocaine_product.save()
    soon = Lot.objects.create(
        product=world.product,
        lot_number="L-SOON",
        expires_on=timezone.now().astimezone(world.clinic.tz).date() + dt.timedelta(days=10),
    )
    stock.receive(soon, 3, user=world.manager)
    stock.receive(world.expired_lot, 1, user=world.manager)


class StockAlertEmailTests:
    def test_the_managers_get_the_days_alerts_once_in_whole_sentences(
        self, world: World, managers: list[str], mail: Mailbox, clock: Any
    ) -> None:
        needing_attention(world)
        out = worker_tick()
        assert "planned the stock alerts of 1 clinic" in out
        assert "stock alerts of Demo Mesotherapy Clinic" in out and "sent" in out
        # Another tick, and another worker, find the day's email sent.
        worker_tick()
        assert alerts.send_due("another worker") == []
        [received] = mail.wait_for(1)
        assert sorted(received.rcpt_tos) == managers
        subject = str(received.message["Subject"])
        assert subject.startswith("5 stock alerts at Demo Mesotherapy Clinic on ")
        text = " ".join(received.text.split())
        lido = world.lidocaine_lot
        for sentence in (
            f"Vial 1 of {lido} was opened on",
            "Throw it away, and close it on the lot's page.",
            f"Vial 2 of {lido} must be used by",
            "Lidocaine 1% has 2 unopened vials left in date, at or below its reorder level of 2.",
            "Lipo mix lot L-SOON expires in 10 days, on ",
            ", with 3 unopened vials left.",
            f"{world.expired_lot} expired on ",
            "with 1 unopened vial left. Throw what is left away, and record it as waste",
        ):
            assert sentence in text, (sentence, text)
        assert "http://127.0.0.1:8000/manage/stock/" in received.text
        assert problems(text.replace("http://127.0.0.1:8000/", "")) == []
        [row] = StockAlertEmail.objects.all()
        assert (row.status, row.sent_to) == ("sent", ", ".join(managers))
        # The next morning's alerts are the next day's email.
        clock.shift(dt.timedelta(days=1))
        worker_tick()
        assert len(mail.wait_for(2)) == 2
        assert StockAlertEmail.objects.filter(status="sent").count() == 2

    def test_nothing_is_sent_when_nothing_needs_attention_or_before_the_hour(
        self, world: World, managers: list[str], mail: Mailbox
    ) -> None:
        with time_machine.travel(at_local(world, 6), tick=False) as clock:
            needing_attention(world)
            worker_tick()
            assert not StockAlertEmail.objects.exists()
            # At seven the clinic's day is planned; the vials were closed and the lots' stock
            # thrown away or used meanwhile, so nothing is left to say.
            for vial in world.lidocaine_lot.vials.all():
                stock.close_vial(vial, "used_up", user=world.manager)
            world.lidocaine_product.reorder_vials = 0
            world.lidocaine_product.save()
            for lot in Lot.objects.filter(product=world.product):
                found = stock.on_hand([lot])[lot.pk]
                if found.unopened:
                    stock.record_count(lot, 0, "Thrown away", user=world.manager)
            clock.shift(dt.timedelta(hours=1))
            worker_tick()
        [row] = StockAlertEmail.objects.all()
        assert (row.status, row.skip_reason) == ("skipped", "nothing in the stock needs attention")
        assert mail.received == []

    def test_a_clinic_whose_managers_have_no_address_is_skipped(
        self, world: World, mail: Mailbox, clock: Any
    ) -> None:
        needing_attention(world)
        worker_tick()
        [row] = StockAlertEmail.objects.all()
        assert (row.status, row.skip_reason) == ("skipped", "no manager has an email address")
        assert mail.received == []

    def test_the_database_refuses_a_second_email_for_a_clinic_and_day(
        self, world: World, clock: Any
    ) -> None:
        assert alerts.do_plan() == 1
        assert alerts.do_plan() == 0
        day = timezone.now().astimezone(world.clinic.tz).date()
        with pytest.raises(IntegrityError), transaction.atomic():
            StockAlertEmail.objects.create(clinic=world.clinic, day=day)


# Several workers at once, in several processes, as in tests/test_reminders.py: each plans and
# sends with the real code; the SMTP server in this process counts what arrives.

SCRIPT = textwrap.dedent(
    """
    import json, sys, threading
    import django
    django.setup()
    from django.db import connection
    from mesoclinic.accounts.models import Clinic, Membership, User
    from mesoclinic.formulary import alerts
    from mesoclinic.formulary.models import Product

    mode, args = sys.argv[1], json.loads(sys.argv[2])
    if mode == "seed":
        clinic = Clinic.objects.create(name="Race clinic", city="Boston", timezone="UTC")
        user = User.objects.create_user("boss", email="boss@example.com")
        Membership.objects.create(user=user, clinic=clinic, role="manager")
        # A product to reorder: none of its vials is left.
        Product.objects.create(
            clinic=clinic, name="Lidocaine", supplier="Acme", vial="multi", reorder_vials=5
        )
        print(json.dumps("seeded"))
    else:
        connection.close()
        barrier = threading.Barrier(args["threads"])
        results = {}

        def work(name):
            try:
                barrier.wait()
                alerts.do_plan()
                results[name] = [o.status for o in alerts.send_due(name)]
            except Exception as exc:
                results[name] = ["error: " + repr(exc)]
            finally:
                connection.close()

        threads = [
            threading.Thread(target=work, args=(f"{args['process']}.{t}",))
            for t in range(args["threads"])
        ]
        print("ready", flush=True)
        sys.stdin.readline()  # Every process waits here until all are ready.
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(json.dumps(results), flush=True)
    """
)


class ConcurrentStockAlertTests:
    def test_many_workers_at_once_send_the_days_email_once(
        self, shared_db: str, smtp_server: Mailbox
    ) -> None:
        # From midnight on, whatever the hour the test runs at.
        env = {**_mail(smtp_server.port), "STOCK_ALERTS_HOUR": "0"}
        run_script(SCRIPT, shared_db, "seed", {}, **env)
        outputs = race_processes(
            SCRIPT, shared_db, [{"process": p, "threads": 3} for p in range(3)], **env
        )
        results = {name: found for output in outputs for name, found in output.items()}
        assert len(results) == 9
        assert Counter(s for found in results.values() for s in found) == {"sent": 1}, results
        received = smtp_server.wait_for(1)
        assert [m.rcpt_tos for m in received] == [["boss@example.com"]]
