"""The safety inbox (issue 5): alerts on Today and under /safety/alerts/, acknowledging,
closing with a note, recalling a lot from its alert with every affected patient listed, in the
web app and the API; tenancy and roles for each."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from html import unescape
from typing import Any

import pytest

from mesoclinic.accounts.models import AuditEvent, Membership, User
from mesoclinic.formulary.models import Lot
from mesoclinic.lib import formats
from mesoclinic.safety import surveil
from mesoclinic.safety.models import SafetyAlert
from tests.conftest import World, api_for, problem_of
from tests.test_surveil import Chart, fixed_p0  # noqa: F401
from tests.test_web import signed_in


@pytest.fixture
def lot_alert(world: World, fixed_p0: None) -> SafetyAlert:  # noqa: F811
    """A CUSUM alert on the world's lot after four infections in four sessions, one of them
    in a session that also injected lidocaine."""
    chart = Chart(world)
    chart.many([1, 1, 1])
    chart.session(lots=[world.lidocaine_lot, world.lot], adverse=True, suspected=[world.lot])
    surveil.run(world.clinic)
    return SafetyAlert.objects.get(method="cusum", subject_key=f"lot:{world.lot.pk}")


@pytest.fixture
def practitioner_alert(lot_alert: SafetyAlert, world: World) -> SafetyAlert:
    return SafetyAlert.objects.get(
        method="cusum", subject_key=f"practitioner:{world.practitioner.pk}"
    )


class TodayTests:
    def test_a_manager_sees_the_safety_alerts_card(
        self, world: World, lot_alert: SafetyAlert
    ) -> None:
        page = signed_in(world.manager).get("/today/")
        assert page.status_code == 200
        text = page.content.decode()
        assert "Safety alerts" in text and f"/safety/alerts/{lot_alert.pk}/" in text

    def test_a_practitioner_and_the_front_desk_do_not(
        self, world: World, lot_alert: SafetyAlert
    ) -> None:
        for user in (world.practitioner, world.front_desk):
            text = signed_in(user).get("/today/").content.decode()
            assert f"/safety/alerts/{lot_alert.pk}/" not in text
            assert 'id="h-safety-alerts"' not in text


class InboxTests:
    def test_the_list_says_the_numbers_in_words(self, world: World, lot_alert: SafetyAlert) -> None:
        text = signed_in(world.manager).get("/safety/alerts/").content.decode()
        assert (
            f"{world.product.name} lot {world.lot.lot_number}: 4 sessions with an adverse event "
            "in 4 sessions (100 %)"
        ) in text
        assert "against a clinic rate of 2 %" in text

    def test_a_lot_alert_lists_every_patient_who_received_the_lot(
        self, world: World, lot_alert: SafetyAlert
    ) -> None:
        page = signed_in(world.manager).get(f"/safety/alerts/{lot_alert.pk}/")
        text = page.content.decode()
        for n in range(1, 5):
            assert f"Patient{n:04d}" in text and f"+1 212 555 {n:04d}" in text
        assert "Download the list (CSV)" in text
        assert AuditEvent.objects.filter(
            action="view", object_type="safety.SafetyAlert", object_id=str(lot_alert.pk)
        ).exists()

    def test_a_practitioner_alert_lists_their_sessions_with_events(
        self, world: World, practitioner_alert: SafetyAlert
    ) -> None:
        text = signed_in(world.manager).get(f"/safety/alerts/{practitioner_alert.pk}/").content
        page = text.decode()
        assert "4 of 4" in page
        assert page.count("Non-tuberculous mycobacterial infection") == 4
        assert "Recall this lot" not in page

    def test_acknowledge_then_close_with_a_note(self, world: World, lot_alert: SafetyAlert) -> None:
        client = signed_in(world.manager)
        client.post(f"/safety/alerts/{lot_alert.pk}/acknowledge/")
        lot_alert.refresh_from_db()
        assert lot_alert.status == "acknowledged" and lot_alert.handled_by == world.manager
        refused = client.post(f"/safety/alerts/{lot_alert.pk}/close/", {"note": "  "})
        assert refused.status_code == 200 and "This field is required" in refused.content.decode()
        lot_alert.refresh_from_db()
        assert lot_alert.status == "acknowledged"
        client.post(f"/safety/alerts/{lot_alert.pk}/close/", {"note": "Supplier notified."})
        lot_alert.refresh_from_db()
        assert lot_alert.status == "closed" and lot_alert.note == "Supplier notified."
        assert AuditEvent.objects.filter(
            action="update", object_id=str(lot_alert.pk), detail__status="closed"
        ).exists()


class RecallTests:
    def test_recalling_from_the_alert_recalls_the_lot_and_lists_every_patient(
        self, world: World, lot_alert: SafetyAlert
    ) -> None:
        client = signed_in(world.manager)
        refused = client.post(f"/safety/alerts/{lot_alert.pk}/recall/", {"reason": ""})
        assert refused.status_code == 200 and "This field is required" in refused.content.decode()
        assert not Lot.objects.get(pk=world.lot.pk).recalled
        done = client.post(
            f"/safety/alerts/{lot_alert.pk}/recall/",
            {"reason": "Cluster of mycobacterial infections"},
            follow=True,
        )
        text = done.content.decode()
        lot = Lot.objects.get(pk=world.lot.pk)
        assert lot.recalled and lot.recalled_by == world.manager
        assert lot.recall_reason == "Cluster of mycobacterial infections"
        assert "4 patients received it" in text
        # Patient0004's session injected lidocaine too: the lot was one of several.
        for n in range(1, 5):
            assert f"Patient{n:04d}" in text
        lot_alert.refresh_from_db()
        assert lot_alert.status == "acknowledged"
        assert AuditEvent.objects.filter(
            action="update", object_type="formulary.Lot", object_id=str(lot.pk)
        ).exists()
        again = client.post(
            f"/safety/alerts/{lot_alert.pk}/recall/", {"reason": "again"}, follow=True
        )
        assert "already recalled" in again.content.decode()

    def test_the_csv_of_affected_patients_has_every_patient(
        self, world: World, lot_alert: SafetyAlert
    ) -> None:
        client = signed_in(world.manager)
        page = client.get(f"/safety/alerts/{lot_alert.pk}/").content.decode()
        from django.urls import reverse

        url = reverse("web:manage_lot_csv", args=[world.lot.pk])
        assert url in page
        rows = list(csv.DictReader(io.StringIO(client.get(url).content.decode())))
        assert sorted(r["last_name"] for r in rows if r["kind"] == "session") == [
            f"Patient{n:04d}" for n in range(1, 5)
        ]


class NavigationTests:
    """One "Safety" entry in the navigation: the alert inbox for managers, the list of serious
    adverse events for practitioners, nothing for the front desk."""

    @staticmethod
    def safety_link(html: str) -> str | None:
        found = re.search(r'<li><a href="([^"]+)"[^>]*>Safety</a></li>', html)
        return found.group(1) if found else None

    def test_each_role_gets_its_own_safety_page(self, world: World) -> None:
        today = {
            role: signed_in(getattr(world, role)).get("/today/").content.decode()
            for role in ("manager", "practitioner", "front_desk")
        }
        assert self.safety_link(today["manager"]) == "/safety/alerts/"
        assert self.safety_link(today["practitioner"]) == "/safety/adverse-events/"
        assert self.safety_link(today["front_desk"]) is None

    def test_a_manager_moves_between_alerts_and_events(self, world: World) -> None:
        client = signed_in(world.manager)
        alerts = client.get("/safety/alerts/").content.decode()
        events = client.get("/safety/adverse-events/").content.decode()
        for html in (alerts, events):
            assert 'aria-label="Safety"' in html
            assert 'href="/safety/adverse-events/"' in html and 'href="/safety/alerts/"' in html
        practitioner = signed_in(world.practitioner).get("/safety/adverse-events/")
        assert 'aria-label="Safety"' not in practitioner.content.decode()


class AccessTests:
    @pytest.mark.parametrize(
        ("method", "path", "data"),
        [
            ("get", "/safety/alerts/", None),
            ("get", "/safety/alerts/{id}/", None),
            ("post", "/safety/alerts/{id}/acknowledge/", {}),
            ("post", "/safety/alerts/{id}/close/", {"note": "x"}),
            ("post", "/safety/alerts/{id}/recall/", {"reason": "x"}),
            ("post", "/safety/alerts/run/", {}),
        ],
    )
    def test_practitioners_and_front_desk_are_refused(
        self, world: World, lot_alert: SafetyAlert, method: str, path: str, data: Any
    ) -> None:
        for user in (world.practitioner, world.front_desk):
            response = getattr(signed_in(user), method)(path.format(id=lot_alert.pk), data)
            assert response.status_code == 403
        lot_alert.refresh_from_db()
        assert lot_alert.status == "open" and not Lot.objects.get(pk=world.lot.pk).recalled

    @pytest.mark.parametrize(
        "path",
        [
            "/safety/alerts/{id}/",
            "/safety/alerts/{id}/acknowledge/",
            "/safety/alerts/{id}/close/",
            "/safety/alerts/{id}/recall/",
        ],
    )
    def test_another_clinics_manager_gets_404(
        self, world: World, other: World, lot_alert: SafetyAlert, path: str
    ) -> None:
        client = signed_in(other.manager)
        url = path.format(id=lot_alert.pk)
        response = client.get(url) if path.endswith("/{id}/") else client.post(url, {"reason": "x"})
        assert response.status_code == 404
        listing = client.get("/safety/alerts/").content.decode()
        assert lot_alert.message not in listing
        lot_alert.refresh_from_db()
        assert lot_alert.status == "open" and not Lot.objects.get(pk=world.lot.pk).recalled

    def test_a_signed_out_visitor_is_sent_to_sign_in(self, lot_alert: SafetyAlert) -> None:
        from django.test import Client

        response = Client().get(f"/safety/alerts/{lot_alert.pk}/")
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]

    def test_run_now_runs_surveillance_for_the_managers_clinic(
        self,
        world: World,
        other: World,
        fixed_p0: None,  # noqa: F811
    ) -> None:
        Chart(world).many([1, 1, 1, 1])
        Chart(other).many([1, 1, 1, 1])
        signed_in(world.manager).post("/safety/alerts/run/")
        assert set(SafetyAlert.objects.values_list("clinic", flat=True)) == {world.clinic.pk}


class ApiTests:
    def test_a_manager_lists_acknowledges_and_closes(
        self, world: World, lot_alert: SafetyAlert
    ) -> None:
        api = api_for(world.manager)
        listed = api.get("/safety/alerts").json()
        assert lot_alert.pk in [a["id"] for a in listed]
        row = next(a for a in listed if a["id"] == lot_alert.pk)
        assert row["sessions"] == 4 and row["adverse_sessions"] == 4
        assert row["baseline_rate"] == 0.02 and row["lot"] == world.lot.pk
        assert api.post(f"/safety/alerts/{lot_alert.pk}/acknowledge").json()["status"] == (
            "acknowledged"
        )
        problem_of(api.post(f"/safety/alerts/{lot_alert.pk}/acknowledge"), 409)
        body = problem_of(api.post(f"/safety/alerts/{lot_alert.pk}/close", {"note": ""}), 422)
        assert "note" in {e["field"] for e in body.get("errors", [])} or "note" in body["detail"]
        closed = api.post(f"/safety/alerts/{lot_alert.pk}/close", {"note": "Reviewed."})
        assert closed.status_code == 200 and closed.json()["status"] == "closed"
        assert lot_alert.pk in [a["id"] for a in api.get("/safety/alerts?status=closed").json()]
        problem_of(api.get("/safety/alerts?status=nonsense"), 422)

    def test_recall_from_an_alert_answers_every_patient(
        self, world: World, lot_alert: SafetyAlert, practitioner_alert: SafetyAlert
    ) -> None:
        api = api_for(world.manager)
        problem_of(api.post(f"/safety/alerts/{lot_alert.pk}/recall", {"reason": ""}), 422)
        problem_of(api.post(f"/safety/alerts/{practitioner_alert.pk}/recall", {"reason": "x"}), 409)
        done = api.post(f"/safety/alerts/{lot_alert.pk}/recall", {"reason": "Cluster"})
        assert done.status_code == 200, done.content
        body = done.json()
        assert body["alert"]["lot_recalled"] is True
        names = sorted(p["last_name"] for p in body["patients"])
        assert names == [f"Patient{n:04d}" for n in range(1, 5)]
        assert all(p["phone"] and p["email"] for p in body["patients"])
        problem_of(api.post(f"/safety/alerts/{lot_alert.pk}/recall", {"reason": "x"}), 409)

    def test_surveil_runs_now_or_dry(self, world: World, fixed_p0: None) -> None:  # noqa: F811
        Chart(world).many([1, 1, 1, 1])
        api = api_for(world.manager)
        dry = api.post("/safety/surveil", {"dry_run": True}).json()
        assert dry["run"] is None and dry["signals"] and not SafetyAlert.objects.exists()
        real = api.post("/safety/surveil", {}).json()
        assert real["run"] and sorted(real["raised"]) == sorted(
            SafetyAlert.objects.values_list("pk", flat=True)
        )

    def test_other_roles_and_clinics_are_refused(
        self, world: World, other: World, lot_alert: SafetyAlert
    ) -> None:
        for user in (world.practitioner, world.front_desk):
            api = api_for(user)
            problem_of(api.get("/safety/alerts"), 403)
            problem_of(api.post(f"/safety/alerts/{lot_alert.pk}/close", {"note": "x"}), 403)
            problem_of(api.post("/safety/surveil", {}), 403)
        stranger = api_for(other.manager)
        assert stranger.get("/safety/alerts").json() == []
        problem_of(stranger.get(f"/safety/alerts/{lot_alert.pk}"), 404)
        problem_of(stranger.post(f"/safety/alerts/{lot_alert.pk}/acknowledge"), 404)
        problem_of(stranger.post(f"/safety/alerts/{lot_alert.pk}/recall", {"reason": "x"}), 404)
        problem_of(api_for(world.manager).get("/safety/alerts/999999"), 404)
        lot_alert.refresh_from_db()
        assert lot_alert.status == "open" and not Lot.objects.get(pk=world.lot.pk).recalled


def raise_alert(world: World, method: str, **subject: Any) -> SafetyAlert:
    """An alert as surveillance stores it, on a lot or a practitioner."""
    lot, who = subject.get("lot"), subject.get("practitioner")
    return SafetyAlert.objects.create(
        clinic=world.clinic,
        method=method,
        subject="lot" if lot else "practitioner",
        lot=lot,
        practitioner=who,
        subject_key=f"lot:{lot.pk}" if lot else f"practitioner:{who.pk}",
        sessions=20,
        adverse_sessions=4,
        baseline_rate=0.02,
        statistic=4.2,
        threshold=3.1,
        message="4 sessions with an adverse event in 20 sessions.",
        status=subject.get("status", SafetyAlert.Status.OPEN),
    )


def headlines_on(page: str, css: str) -> list[str]:
    found = re.findall(
        rf'<a href="[^"]*"(?: class="{css}")?>([^<]*adverse events than usual[^<]*)</a>', page
    )
    return [unescape(h) for h in found]


class DistinctHeadlinesTests:
    """Where two alerts would read alike, each headline says what differs: the kind of watch,
    the practitioner or lot in full, or when it was raised."""

    def test_a_lots_two_kinds_of_alert_read_apart_on_today_and_the_list(self, world: World) -> None:
        raise_alert(world, "cusum", lot=world.lot)
        raise_alert(world, "maxsprt", lot=world.lot)
        lot = f"Lot {world.lot.lot_number} of {world.product.name}"
        expected = {
            f"{lot}: more adverse events than usual in recent sessions.",
            f"{lot}: more adverse events than usual since the lot was first used.",
        }
        client = signed_in(world.manager)
        today = headlines_on(client.get("/today/").content.decode(), "")
        assert sorted(today) == sorted(expected)
        listed = headlines_on(client.get("/safety/alerts/").content.decode(), "alert-headline")
        assert sorted(listed) == sorted(expected)

    def test_two_practitioners_of_one_name_read_apart_by_their_sign_in_names(
        self, world: World
    ) -> None:
        world.practitioner.first_name, world.practitioner.last_name = "Maria", "Roy"
        world.practitioner.save()
        namesake = User.objects.create_user("mroy2", first_name="Maria", last_name="Roy")
        Membership.objects.create(
            user=namesake, clinic=world.clinic, role=Membership.Role.PRACTITIONER
        )
        raise_alert(world, "cusum", practitioner=world.practitioner)
        raise_alert(world, "cusum", practitioner=namesake)
        page = signed_in(world.manager).get("/safety/alerts/").content.decode()
        listed = headlines_on(page, "alert-headline")
        assert sorted(listed) == sorted(
            f"Sessions given by Maria Roy ({login}): more adverse events than usual in "
            "recent sessions."
            for login in (world.practitioner.get_username(), "mroy2")
        )
        # Today's card tells them apart the same way.
        today = signed_in(world.manager).get("/today/").content.decode()
        card = today.split('id="h-safety-alerts"')[1].split("</section>")[0]
        for login in (world.practitioner.get_username(), "mroy2"):
            assert f"Sessions given by Maria Roy ({login})" in card

    def test_a_closed_alert_and_a_new_one_on_the_same_lot_say_when_each_was_raised(
        self, world: World
    ) -> None:
        old = raise_alert(world, "cusum", lot=world.lot, status=SafetyAlert.Status.CLOSED)
        SafetyAlert.objects.filter(pk=old.pk).update(
            raised_at=old.raised_at - dt.timedelta(days=30), handled_at=old.raised_at
        )
        new = raise_alert(world, "cusum", lot=world.lot)
        rows = surveil.alert_rows(
            list(SafetyAlert.objects.filter(pk__in=[old.pk, new.pk])), world.clinic
        )
        headlines = [r["headline"] for r in rows]
        assert len(set(headlines)) == 2, headlines
        for row in rows:
            raised = formats.datetime_text(row["alert"].raised_at, world.clinic)
            assert row["headline"].endswith(f", raised {raised}."), row["headline"]
        page = signed_in(world.manager).get("/safety/alerts/").content.decode()
        assert len(set(headlines_on(page, "alert-headline"))) == 2

    def test_the_alert_page_says_its_headline(self, world: World) -> None:
        alert = raise_alert(world, "maxsprt", lot=world.lot)
        page = unescape(
            signed_in(world.manager).get(f"/safety/alerts/{alert.pk}/").content.decode()
        )
        assert "more adverse events than usual since the lot was first used." in page
