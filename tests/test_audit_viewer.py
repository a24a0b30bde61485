"""The managers' audit viewer at /manage/audit/ and GET /api/v1/audit: who read or changed
what in their own clinic, filtered, paginated, newest first, with an audited CSV export."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest
import time_machine

from mesoclinic.accounts.models import AuditEvent, Clinic, User, audit
from mesoclinic.patients.models import Patient
from tests.conftest import World, api_for, problem_of
from tests.test_web import signed_in

NY = dt.timezone(dt.timedelta(hours=-5))


def row(
    clinic: Clinic, user: User | None, action: str, patient: Patient | None, at: dt.datetime
) -> AuditEvent:
    with time_machine.travel(at, tick=False):
        return audit(
            clinic=clinic,
            user=user,
            action=action,
            obj=patient,
            patient_id=patient.pk if patient else None,
            via="web",
        )


@pytest.fixture
def trail(world: World, other: World, patient: Patient) -> dict[str, Any]:
    AuditEvent.objects.all().delete()
    bea = Patient.objects.create(
        clinic=world.clinic, first_name="Bea", last_name="Diaz", date_of_birth=dt.date(1985, 1, 2)
    )
    stranger = Patient.objects.create(
        clinic=other.clinic, first_name="Zoe", last_name="Far", date_of_birth=dt.date(1980, 1, 2)
    )
    return {
        "bea": bea,
        "stranger": stranger,
        "rows": [
            row(
                world.clinic,
                world.practitioner,
                "view",
                patient,
                dt.datetime(2026, 11, 2, 15, tzinfo=dt.UTC),
            ),
            row(
                world.clinic,
                world.front_desk,
                "update",
                bea,
                dt.datetime(2026, 11, 3, 15, tzinfo=dt.UTC),
            ),
            row(
                world.clinic,
                world.practitioner,
                "view",
                bea,
                dt.datetime(2026, 11, 4, 15, tzinfo=dt.UTC),
            ),
            # 02:00 UTC on 6 Nov is still 5 Nov in New York.
            row(
                world.clinic,
                world.manager,
                "export",
                None,
                dt.datetime(2026, 11, 6, 2, tzinfo=dt.UTC),
            ),
            row(
                other.clinic,
                other.practitioner,
                "view",
                stranger,
                dt.datetime(2026, 11, 4, 16, tzinfo=dt.UTC),
            ),
        ],
    }


def listed(page: str, trail: dict[str, Any]) -> int:
    """How many audit rows the page lists (its table has a header row, when it has rows)."""
    return max(page.count("<tr>") - 1, 0)


class AuditViewerTests:
    def test_it_lists_the_clinics_rows_newest_first_and_never_another_clinics(
        self, world: World, trail: dict[str, Any]
    ) -> None:
        r = signed_in(world.manager).get("/manage/audit/")
        assert r.status_code == 200
        assert r["Cache-Control"] == "no-store"
        page = r.content.decode()
        assert "Zoe" not in page and "Far" not in page
        assert listed(page, trail) == 4
        assert (
            page.index("Thu 5 Nov 2026")
            < page.index("Wed 4 Nov 2026")
            < page.index("Mon 2 Nov 2026")
        )
        assert "Ana Lopez" in page and "Bea Diaz" in page
        assert 'href="/manage/audit/"' in page  # in the manager's navigation

    def test_it_filters_by_patient_user_action_and_dates(
        self, world: World, patient: Patient, trail: dict[str, Any]
    ) -> None:
        client = signed_in(world.manager)
        by_name = client.get("/manage/audit/", {"patient": "diaz"}).content.decode()
        assert listed(by_name, trail) == 2 and "Ana Lopez" not in by_name
        by_number = client.get("/manage/audit/", {"patient": str(patient.pk)}).content.decode()
        assert listed(by_number, trail) == 1
        by_user = client.get("/manage/audit/", {"user": world.practitioner.pk}).content.decode()
        assert listed(by_user, trail) == 2
        by_action = client.get("/manage/audit/", {"action": "update"}).content.decode()
        assert listed(by_action, trail) == 1 and "Bea Diaz" in by_action
        by_dates = client.get(
            "/manage/audit/", {"since": "2026-11-03", "until": "2026-11-05"}
        ).content.decode()
        assert listed(by_dates, trail) == 3
        # Another clinic's patient matches nothing, even by number.
        stranger = client.get("/manage/audit/", {"patient": str(trail["stranger"].pk)})
        assert listed(stranger.content.decode(), trail) == 0

    def test_it_says_when_the_dates_are_the_wrong_way_round(
        self, world: World, trail: dict[str, Any]
    ) -> None:
        page = (
            signed_in(world.manager)
            .get("/manage/audit/", {"since": "2026-11-05", "until": "2026-11-03"})
            .content.decode()
        )
        assert "The last day must not be before the first day." in page

    def test_it_pages_through_many_rows(self, world: World, patient: Patient) -> None:
        AuditEvent.objects.all().delete()
        AuditEvent.objects.bulk_create(
            AuditEvent(
                clinic=world.clinic,
                action="view",
                object_type="patients.Patient",
                patient_id=patient.pk,
            )
            for _ in range(120)
        )
        client = signed_in(world.manager)
        first = client.get("/manage/audit/").content.decode()
        third = client.get("/manage/audit/", {"page": 3}).content.decode()
        # Showing the first page was itself a read of the patient it showed: 121 rows.
        assert listed(first, {}) == 50 and listed(third, {}) == 21
        assert "Page 1 of 3" in first

    def test_the_csv_holds_the_filtered_rows_and_is_itself_audited(
        self, world: World, trail: dict[str, Any]
    ) -> None:
        r = signed_in(world.manager).get("/manage/audit.csv", {"patient": "Diaz"})
        assert r.status_code == 200
        assert r["Cache-Control"] == "no-store"
        assert r["Content-Type"].startswith("text/csv")
        lines = list(csv.reader(io.StringIO(b"".join(r.streaming_content).decode())))
        assert lines[0][:3] == ["When", "User", "Action"]
        body = lines[1:]
        assert [(line[1], line[2], line[6]) for line in body] == [
            ("practitioner", "view", "Bea Diaz"),
            ("frontdesk", "update", "Bea Diaz"),
        ]
        assert body[0][0] == "2026-11-04T10:00:00-05:00"
        export = AuditEvent.objects.get(action="export", object_type="accounts.AuditEvent")
        assert (export.clinic, export.user, export.via) == (world.clinic, world.manager, "web")
        assert export.detail["rows"] == 2
        assert export.detail["filters"]["patients"] == [trail["bea"].pk]

    @pytest.mark.parametrize("role", ["practitioner", "front_desk"])
    def test_it_refuses_staff_who_are_not_managers(
        self, world: World, trail: dict[str, Any], role: str
    ) -> None:
        client = signed_in(getattr(world, role))
        assert client.get("/manage/audit/").status_code == 403
        assert client.get("/manage/audit.csv").status_code == 403
        assert 'href="/manage/audit/"' not in client.get("/today/").content.decode()

    def test_another_clinics_manager_sees_only_their_own(
        self, other: World, trail: dict[str, Any]
    ) -> None:
        page = signed_in(other.manager).get("/manage/audit/").content.decode()
        assert listed(page, trail) == 1 and "Zoe Far" in page and "Bea" not in page


class AuditApiTests:
    def test_a_manager_reads_the_filtered_trail(self, world: World, trail: dict[str, Any]) -> None:
        api = api_for(world.manager)
        r = api.get("/audit", patient=trail["bea"].pk)
        assert r.status_code == 200
        body = r.json()
        assert body["count"] == 2
        assert [e["action"] for e in body["events"]] == ["view", "update"]
        assert {e["patient"] for e in body["events"]} == {trail["bea"].pk}
        assert api.get("/audit", since="2026-11-05", until="2026-11-05").json()["count"] == 1
        assert api.get("/audit", user=world.front_desk.pk).json()["count"] == 1

    def test_it_never_shows_another_clinics_rows(self, world: World, trail: dict[str, Any]) -> None:
        body = api_for(world.manager).get("/audit", patient=trail["stranger"].pk).json()
        assert body["count"] == 0

    @pytest.mark.parametrize("role", ["practitioner", "front_desk"])
    def test_it_refuses_staff_who_are_not_managers(
        self, world: World, trail: dict[str, Any], role: str
    ) -> None:
        problem_of(api_for(getattr(world, role)).get("/audit"), 403)

    def test_it_names_a_bad_filter(self, world: World) -> None:
        body = problem_of(api_for(world.manager).get("/audit", action="peek"), 422)
        assert "action" in body["detail"]
