"""A manager changes the clinic's consent wording from the app (/manage/consent/): a preview
first, then a new version saved beside the old ones, never an old one changed; audited; and
two managers saving at once make one version, not two of one number."""

from __future__ import annotations

import re
import threading
import time
from html import unescape
from typing import Any

import pytest
from django.db import OperationalError, connection
from django.test import Client

from mesoclinic.accounts.models import AuditEvent, User
from mesoclinic.patients import consent as consent_text
from mesoclinic.patients.actions import do_change_consent_wording
from mesoclinic.patients.models import ConsentTemplate
from tests.conftest import World, build_clinic

URL = "/manage/consent/"
NEW_WORDING = "Consent to mesotherapy at our clinic\n\nI have read the leaflet we gave you."


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page_of(response: Any, status: int = 200) -> str:
    assert response.status_code == status, (response.status_code, response.content[:400])
    return unescape(response.content.decode())


def error_of(page: str, field: str) -> str:
    found = re.search(rf'id="id_{field}_error"><ul class="errorlist">(.*?)</ul>', page, re.S)
    assert found is not None, f"no error beside {field}"
    return found.group(1)


def versions(world: World) -> list[int]:
    return list(
        ConsentTemplate.objects.filter(clinic=world.clinic)
        .order_by("version")
        .values_list("version", flat=True)
    )


def post(client: Client, button: str, body: str = NEW_WORDING, base: int = 1, **more: str) -> Any:
    return client.post(URL, {"body": body, "base_version": base, button: "1", **more})


class ConsentWordingPageTests:
    def test_the_page_shows_the_wording_in_use_as_a_patient_reads_it(self, world: World) -> None:
        page = page_of(signed_in(world.manager).get(URL))
        assert "version 1 in use" in page
        assert "Consent to mesotherapy" in page
        # The preview adds the regulatory section from the formulary, for the clinic's products.
        assert "Regulatory status of the products planned for you" in page
        assert f"{world.product.name} (supplier: {world.product.supplier})" in page

    def test_the_setup_guide_links_to_it(self, world: World) -> None:
        page = page_of(signed_in(world.manager).get("/manage/setup/"))
        assert f'href="{URL}"' in page

    def test_preview_shows_the_change_and_saves_nothing(self, world: World) -> None:
        page = page_of(post(signed_in(world.manager), "preview"))
        assert "Preview of your change" in page
        assert "I have read the leaflet we gave you." in page
        assert "Regulatory status of the products planned for you" in page
        assert versions(world) == [1]
        assert not AuditEvent.objects.filter(object_type="patients.ConsentTemplate").exists()

    def test_saving_makes_the_next_version_and_keeps_the_first(self, world: World) -> None:
        first = consent_text.current_template(world.clinic)
        client = signed_in(world.manager)
        response = post(client, "save", change_note="Our own leaflet")
        assert response.status_code == 302
        assert versions(world) == [1, 2]
        first.refresh_from_db()
        assert first.body == consent_text.DEFAULT_BODY  # never edited in place
        new = consent_text.current_template(world.clinic)
        assert (new.version, new.body, new.change_note) == (2, NEW_WORDING, "Our own leaflet")
        assert new.created_by == world.manager
        event = AuditEvent.objects.get(
            object_type="patients.ConsentTemplate", object_id=str(new.pk)
        )
        assert event.action == AuditEvent.Action.CREATE and event.user == world.manager
        assert event.detail == {"version": 2, "replaces": 1, "note": "Our own leaflet"}
        page = page_of(client.get(URL))
        assert "Version 2 of the consent wording is in use." in page
        assert "version 2 in use" in page and "Our own leaflet" in page

    def test_windows_line_ends_are_saved_as_typed_lines(self, world: World) -> None:
        post(signed_in(world.manager), "save", body=NEW_WORDING.replace("\n", "\r\n"))
        assert consent_text.current_template(world.clinic).body == NEW_WORDING

    @pytest.mark.parametrize(
        ("body", "error"),
        [
            ("   ", "This field is required."),
            (consent_text.DEFAULT_BODY, "This is the wording in use already: change it first."),
        ],
    )
    def test_an_empty_or_unchanged_wording_is_refused_beside_the_field(
        self, world: World, body: str, error: str
    ) -> None:
        consent_text.current_template(world.clinic)
        page = page_of(post(signed_in(world.manager), "save", body=body))
        assert error in error_of(page, "body")
        assert versions(world) == [1]

    def test_a_save_started_from_an_older_version_is_refused_then_goes_through(
        self, world: World
    ) -> None:
        consent_text.current_template(world.clinic)
        do_change_consent_wording(
            world.clinic, "Wording by a colleague.", world.manager, base_version=1
        )
        client = signed_in(world.manager)
        page = page_of(post(client, "save", base=1))
        assert "Someone saved version 2 of the wording while you were editing." in error_of(
            page, "body"
        )
        assert versions(world) == [1, 2]
        # The page now starts from version 2: saving again, having read it, goes through.
        assert 'name="base_version" value="2"' in page
        assert post(client, "save", base=2).status_code == 302
        assert versions(world) == [1, 2, 3]

    @pytest.mark.parametrize("role", ["practitioner", "front_desk"])
    def test_other_roles_may_not_see_or_save_it(self, world: World, role: str) -> None:
        client = signed_in(getattr(world, role))
        assert client.get(URL).status_code == 403
        assert post(client, "save").status_code == 403
        assert ConsentTemplate.objects.filter(clinic=world.clinic, version__gt=1).count() == 0

    def test_another_clinics_manager_changes_only_their_own(
        self, world: World, other: World
    ) -> None:
        consent_text.current_template(world.clinic)
        assert post(signed_in(other.manager), "save").status_code == 302
        assert versions(world) == [1]
        assert versions(other) == [1, 2]
        assert consent_text.current_template(world.clinic).body == consent_text.DEFAULT_BODY


@pytest.mark.django_db(transaction=True)
class ConsentWordingRaceTests:
    def test_two_managers_saving_at_once_make_one_version(self) -> None:
        """Both started from version 1: one saves version 2, the other is told someone saved
        it meanwhile. Neither overwrites the other, and no version number is taken twice."""
        world = build_clinic("Wording Race Clinic", "wr_")
        consent_text.current_template(world.clinic)
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def save(body: str) -> None:
            try:
                barrier.wait(timeout=10)
                for _ in range(400):
                    try:
                        do_change_consent_wording(world.clinic, body, world.manager, base_version=1)
                        outcomes.append("saved")
                        return
                    except OperationalError as exc:
                        # SQLite's shared in-memory test database reports a held lock at once
                        # instead of waiting for it.
                        assert "locked" in str(exc), exc
                        time.sleep(0.025)
                    except Exception as exc:  # noqa: BLE001 - the refusal, or a failure to show
                        outcomes.append(type(exc).__name__)
                        return
                outcomes.append("still locked")
            finally:
                connection.close()

        threads = [threading.Thread(target=save, args=(b,)) for b in ("First.", "Second.")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(outcomes) == ["ValidationError", "saved"], outcomes
        assert list(
            ConsentTemplate.objects.filter(clinic=world.clinic)
            .order_by("version")
            .values_list("version", flat=True)
        ) == [1, 2]
        assert AuditEvent.objects.filter(object_type="patients.ConsentTemplate").count() == 1
