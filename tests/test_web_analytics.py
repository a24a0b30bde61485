"""The clinic analytics page (/analytics/) and GET /api/v1/analytics: managers only, this
clinic's data only, an audited read with no patient, charts that parse as SVG."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from typing import Any

import time_machine

from mesoclinic.accounts.models import AuditEvent, User
from mesoclinic.patients.models import Patient
from tests.conftest import World, api_for, error_fields, problem_of
from tests.test_analytics import NOW, build_hand_clinic
from tests.test_web import signed_in

SVG = "{http://www.w3.org/2000/svg}"


def page(user: User, **params: str) -> Any:
    with time_machine.travel(NOW, tick=False):
        return signed_in(user).get("/analytics/", params)


def charts(html: str) -> list[ET.Element]:
    return [ET.fromstring(svg) for svg in re.findall(r"<svg class=\"bars\".*?</svg>", html, re.S)]


class AnalyticsPageTests:
    def test_a_manager_sees_every_chart_with_its_figures(self, world: World) -> None:
        build_hand_clinic(world)
        response = page(world.manager)
        assert response.status_code == 200
        html = response.content.decode()
        assert "The clinic&#x27;s own observed figures" in html or "own observed figures" in html
        assert "not evidence that a treatment works" in html
        found = charts(html)
        assert len(found) == 6
        titles = [svg.find(f"{SVG}title").text for svg in found]  # type: ignore[union-attr]
        assert titles[0] == "Courses improved, by protocol"
        # Cellulite: 3 of 5 assessed courses improved; localized fat has one course.
        protocol = found[0]
        desc = protocol.find(f"{SVG}desc").text or ""  # type: ignore[union-attr]
        assert "60 % (n = 5)" in desc
        assert "too few to compare (n = 1)" in desc
        bars = protocol.findall(f".//{SVG}rect")
        assert [float(b.get("width") or 0) for b in bars] == [180.0]  # 60 % of 300
        # Every svg names its title and description for assistive technology.
        for svg in found:
            assert svg.get("role") == "img"
            title, desc = svg.find(f"{SVG}title"), svg.find(f"{SVG}desc")
            assert title is not None and desc is not None
            assert svg.get("aria-labelledby") == title.get("id")
            assert svg.get("aria-describedby") == desc.get("id")
        # The completion table: 2 completed of 7 started.
        assert re.search(r"<th scope=\"row\">Completed</th><td>2</td><td>29 %</td>", html)

    def test_reading_it_is_audited_without_a_patient(self, world: World) -> None:
        page(world.manager, **{"from": "2025-01-01", "to": "2025-03-31"})
        event = AuditEvent.objects.get(object_type="analytics")
        assert (event.action, event.via, event.patient_id) == ("view", "web", None)
        assert event.detail == {"start": "2025-01-01", "end": "2025-03-31"}
        assert event.clinic == world.clinic and event.user == world.manager

    def test_the_range_filter_is_applied(self, world: World) -> None:
        build_hand_clinic(world)
        html = page(world.manager, **{"from": "2025-05-01", "to": "2025-05-31"}).content.decode()
        assert "<strong>3</strong>" in html  # C3, C5, C7 started in May

    def test_a_range_back_to_front_is_refused_beside_its_field(self, world: World) -> None:
        response = page(world.manager, **{"from": "2025-05-01", "to": "2025-04-01"})
        assert response.status_code == 422
        html = response.content.decode()
        assert 'id="id_from_error"' in html and "must be on or before the end" in html
        assert not charts(html)
        assert not AuditEvent.objects.filter(object_type="analytics").exists()

    def test_a_date_that_is_not_a_date_is_refused(self, world: World) -> None:
        response = page(world.manager, **{"to": "2025-13-45"})
        assert response.status_code == 422
        assert 'id="id_to_error"' in response.content.decode()

    def test_an_empty_clinic_says_no_data_yet(self, world: World) -> None:
        response = page(world.manager)
        assert response.status_code == 200
        assert "No data yet" in response.content.decode()
        assert not charts(response.content.decode())

    def test_a_practitioner_and_the_front_desk_may_not_see_it(self, world: World) -> None:
        assert page(world.practitioner).status_code == 403
        assert page(world.front_desk).status_code == 403

    def test_a_patient_login_may_not_see_it(self, world: World, patient: Patient) -> None:
        outsider = User.objects.create_user("ana", password="pw")
        assert page(outsider).status_code == 403

    def test_another_clinics_manager_sees_only_their_own_clinic(
        self, world: World, other: World
    ) -> None:
        build_hand_clinic(world)
        response = page(other.manager)
        assert response.status_code == 200
        assert "No data yet" in response.content.decode()

    def test_only_managers_see_the_link_in_the_navigation(self, world: World) -> None:
        with time_machine.travel(NOW, tick=False):
            manager = signed_in(world.manager).get("/today/").content.decode()
            practitioner = signed_in(world.practitioner).get("/today/").content.decode()
        assert 'href="/analytics/"' in manager
        assert 'href="/analytics/"' not in practitioner


class AnalyticsApiTests:
    def get(self, user: User, **params: str) -> Any:
        with time_machine.travel(NOW, tick=False):
            return api_for(user).get("/analytics", **params)

    def test_a_manager_gets_the_same_figures_as_json(self, world: World, other: World) -> None:
        build_hand_clinic(world)
        build_hand_clinic(other)
        response = self.get(world.manager)
        assert response.status_code == 200, response.content
        body = response.json()
        assert (body["from"], body["to"]) == ("2024-06-16", "2025-06-15")
        assert body["courses"] == 8
        cellulite = next(g for g in body["by_protocol"] if g["key"] == "cellulite")
        assert (cellulite["courses"], cellulite["assessed"], cellulite["improved"]) == (6, 5, 3)
        assert cellulite["improved_share"] == 0.6 and cellulite["too_few"] is False
        # Four Hexsel courses: too few, so the mean is withheld.
        assert cellulite["hexsel_courses"] == 4 and cellulite["hexsel_mean_change"] is None
        fat = next(g for g in body["by_protocol"] if g["key"] == "localized_fat")
        assert fat["too_few"] is True and fat["improved"] is None
        assert [(m["session"], m["reached"], m["assessed"]) for m in body["milestones"]] == [
            (5, 4, 4),
            (10, 1, 1),
        ]
        done = body["completion"]
        assert (done["started"], done["completed"], done["lapsed"], done["stopped"]) == (7, 2, 1, 1)
        assert body["maintenance"] == {
            "opened": 3,
            "in_window": 1,
            "waiting": 1,
            "missed": 1,
            "adherence": 1 / 3,
        }
        assert "not evidence" in body["notice"]
        event = AuditEvent.objects.get(object_type="analytics")
        assert (event.via, event.patient_id, event.clinic) == ("api", None, world.clinic)

    def test_the_range_is_applied(self, world: World) -> None:
        build_hand_clinic(world)
        body = self.get(world.manager, **{"from": "2025-05-01", "to": "2025-05-31"}).json()
        assert body["courses"] == 3

    def test_a_bad_range_is_a_422_naming_the_field(self, world: World) -> None:
        assert error_fields(
            self.get(world.manager, **{"from": "2025-05-01", "to": "2025-04-01"})
        ) == {"from"}
        assert error_fields(
            self.get(world.manager, **{"from": "2000-01-01", "to": "2020-01-01"})
        ) == {"to"}
        assert "from" in error_fields(self.get(world.manager, **{"from": "yesterday"}))
        assert error_fields(self.get(world.manager, **{"from": "0001-01-01"})) == {"from"}

    def test_other_roles_are_refused(self, world: World) -> None:
        problem_of(self.get(world.practitioner), 403)
        problem_of(self.get(world.front_desk), 403)

    def test_another_clinic_sees_none_of_this_clinics_data(
        self, world: World, other: World
    ) -> None:
        build_hand_clinic(world)
        body = self.get(other.manager).json()
        assert body["courses"] == 0 and body["by_protocol"] == []
        assert body["maintenance"]["opened"] == 0

    def test_without_a_token_it_is_401(self, db: Any) -> None:
        from django.test import Client

        assert Client().get("/api/v1/analytics").status_code == 401


def test_the_extract_takes_a_fixed_number_of_queries(world: World) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from mesoclinic.outcomes import analytics

    counts = []
    for _ in range(2):
        build_hand_clinic(world)
        with CaptureQueriesContext(connection) as captured:
            analytics.extract(world.clinic, dt.date(2025, 6, 15))
        counts.append(len(captured))
    assert counts[0] == counts[1] <= 7
