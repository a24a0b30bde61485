"""The manager's protocol pages: every fact with its source, the version history, editing
value by value (and how an edit treats the value's source), and the whole-document editor."""

from __future__ import annotations

import datetime as dt
import html
import importlib
import json
import re
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.test import Client

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.courses import actions
from mesoclinic.courses.models import Course
from mesoclinic.patients.models import Patient
from mesoclinic.protocols.models import ClinicProtocol, do_edit_protocol
from mesoclinic.protocols.vocab import NO_SOURCE
from mesoclinic.web.manage_protocol_forms import ProtocolValuesForm
from tests.conftest import World, api_for
from tests.test_web import signed_in

S002 = "002_fa4d881737f3a5fe.txt"
EDIT = "/manage/protocols/cellulite/edit/"


def current(world: World, key: str = "cellulite") -> ClinicProtocol:
    found = ClinicProtocol.current(world.clinic, key)
    assert found is not None
    return found


def versions(world: World, key: str = "cellulite") -> list[int]:
    return list(
        ClinicProtocol.objects.filter(clinic=world.clinic, key=key)
        .order_by("version")
        .values_list("version", flat=True)
    )


def values_post(protocol: ClinicProtocol, **changes: Any) -> dict[str, Any]:
    """What the value form posts when the manager changes only `changes`: every other input
    as the page fills it in."""
    form = ProtocolValuesForm(current=protocol)
    data: dict[str, Any] = {"editor": "values", "change_note": "Our own course plan"}
    for name, field in form.fields.items():
        value = form.get_initial_for_field(field, name)
        if isinstance(value, list):
            data[name] = [str(v) for v in value]
        elif value is not None:
            data[name] = str(value)
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def document_post(document: Any, protocol: ClinicProtocol, note: str = "Edited by hand") -> dict:
    text = document if isinstance(document, str) else json.dumps(document)
    return {
        "editor": "document",
        "doc-document": text,
        "doc-change_note": note,
        "doc-base_version": str(protocol.version),
    }


def errors_of(response: Any) -> str:
    """The text of every error list on a page."""
    page = response.content.decode()
    found = re.findall(r'<ul class="errorlist"[^>]*>(.*?)</ul>', page, re.S)
    return html.unescape(" ".join(found))


def plan_course(world: World, patient: Patient) -> Course:
    return actions.do_plan_course(
        patient,
        current(world),
        indication="cellulite",
        areas=["thighs"],
        cadence_days=7,
        planned_sessions=15,
        first_session_on=dt.date.today() + dt.timedelta(days=2),
        user=world.practitioner,
    )


def web_audits() -> Any:
    return AuditEvent.objects.filter(
        action=AuditEvent.Action.UPDATE, object_type="protocols.ClinicProtocol", via="web"
    )


class ProtocolPagesTests:
    def test_the_list_shows_each_protocol_with_version_author_and_change_note(
        self, world: World
    ) -> None:
        do_edit_protocol(
            world.clinic,
            "hair_loss",
            current(world, "hair_loss").document,
            world.manager,
            "Checked against our price list",
        )
        page = signed_in(world.manager).get("/manage/protocols/").content.decode()
        for name in ("Cellulite (body)", "Hair loss", "Localized fat"):
            assert name in page
        assert "/manage/protocols/cellulite/" in page
        assert "Checked against our price list" in page
        assert "by Manager" in page
        assert "v2" in page and "installed with the clinic" in page

    def test_the_page_shows_every_fact_with_its_source(self, world: World) -> None:
        page = signed_in(world.manager).get("/manage/protocols/cellulite/").content.decode()
        # A fact in words, with the article's title, never its file name.
        assert "Price per session" in page and "USD 500–800" in page
        assert S002 not in page and "Reducing Cellulite with Mesotherapy" in page
        assert "Days between sessions" in page and "every 7 or 14 days" in page
        assert "Allergy test: wait before the reading" in page and "24 h" in page
        # A reference that is not a seed is written out.
        assert "CTCAE v5.0, injection site reaction: grade 3 is severe" in page
        # "No source" is said plainly, with the note the schema requires.
        assert "Days a session may fall early or late" in page
        assert "No source" in page
        assert "The articles give none; the clinic sets it." in page
        # A quote the schema keeps as the note.
        assert "“Reducing Cellulite with Mesotherapy”: minor swelling for up to 5 days." in page

    def test_a_disputed_value_shows_both_options_and_which_is_chosen(self, world: World) -> None:
        page = signed_in(world.manager).get("/manage/protocols/cellulite/").content.decode()
        sessions = page[page.index("Sessions in a course") :][:3000]
        assert "The sources disagree: 2 options" in sessions
        assert "10–15 sessions" in sessions and "15–20 sessions" in sessions
        chosen = sessions[: sessions.index("15–20 sessions")]
        assert chosen.count("Chosen") == 1 and "Not chosen" in chosen
        assert "How long results last" in page and "Results are permanent unless" in page

    def test_the_history_shows_which_version_each_course_keeps(
        self, world: World, patient: Patient
    ) -> None:
        plan_course(world, patient)
        do_edit_protocol(world.clinic, "cellulite", current(world).document, world.manager, "v2")
        page = signed_in(world.manager).get("/manage/protocols/cellulite/").content.decode()
        history = page[page.index("Version history") :]
        rows = re.findall(r"<tr[^>]*>(.*?)</tr>", history, re.S)[1:]
        assert "v2" in rows[0] and "Current" in rows[0] and rows[0].rstrip().endswith("<td>0</td>")
        assert "v1" in rows[1] and rows[1].rstrip().endswith("<td>1</td>")
        assert "1 course stays on earlier versions" in page

    def test_an_older_version_can_be_read_and_says_so(self, world: World) -> None:
        doc = current(world).document
        doc["price_per_session"] = {
            "value": {"min": 450, "max": 700, "currency": "USD"},
            "source": [NO_SOURCE],
            "note": "Our prices",
        }
        do_edit_protocol(world.clinic, "cellulite", doc, world.manager, "New prices")
        client = signed_in(world.manager)
        old = client.get("/manage/protocols/cellulite/?version=1").content.decode()
        assert "This is version 1" in old and "USD 500–800" in old and "USD 450–700" not in old
        assert "Edit the protocol" not in old
        new = client.get("/manage/protocols/cellulite/").content.decode()
        assert "USD 450–700" in new and "Our prices" in new

    def test_the_edit_form_shows_each_values_source_beside_its_input(self, world: World) -> None:
        page = signed_in(world.manager).get(EDIT).content.decode()
        assert "Saving makes <strong>version 2</strong>" in page
        price = page[page.index('id="fact-price_per_session"') :]
        price = price[: price.index("</fieldset>")]
        assert "USD 500–800" in price and "Reducing Cellulite with Mesotherapy" in price
        assert S002 not in price
        assert 'name="price_per_session-min"' in price and 'value="500"' in price
        tolerance = page[page.index('id="fact-cadence_tolerance_days"') :]
        tolerance = tolerance[: tolerance.index("</fieldset>")]
        assert "No source" in tolerance and "The articles give none" in tolerance
        # The whole document, for the advanced editor.
        assert 'name="doc-document"' in page and "&quot;allergy_test&quot;" in page


class ValueEditTests:
    def test_a_valid_edit_saves_the_next_version_and_the_old_course_keeps_its_version(
        self, world: World, patient: Patient
    ) -> None:
        course = plan_course(world, patient)
        protocol = current(world)
        response = signed_in(world.manager).post(
            EDIT, values_post(protocol, **{"cadence_days-pick": "own", "cadence_days-days": ["7"]})
        )
        assert response.status_code == 302
        assert response["Location"] == "/manage/protocols/cellulite/"
        assert versions(world) == [1, 2]
        new = current(world)
        assert new.spec.cadence.days.v == [7]
        assert new.change_note == "Our own course plan" and new.created_by == world.manager
        course.refresh_from_db()
        assert course.protocol_id == protocol.pk and course.protocol.spec.cadence.days.v == [7, 14]

    def test_a_value_inside_its_source_keeps_that_source(self, world: World) -> None:
        post = values_post(
            current(world), **{"sessions-pick": "own", "sessions-min": "16", "sessions-max": "18"}
        )
        assert signed_in(world.manager).post(EDIT, post).status_code == 302
        sessions = current(world).document["sessions"]
        assert sessions["choose"] == "clinic"
        assert sessions["options"]["clinic"]["value"] == {"min": 16, "max": 18}
        assert sessions["options"]["clinic"]["source"] == [S002]
        assert (
            sessions["options"]["clinic"]["note"]
            == "Within what Reducing Cellulite with Mesotherapy (15–20 sessions) gives."
        )
        # The sources' own values stay as they were, to go back to.
        assert sessions["options"]["cellulite_002"]["value"] == {"min": 15, "max": 20}
        assert sessions["options"]["general"]["value"] == {"min": 10, "max": 15}

    def test_weekly_only_lies_inside_weekly_or_fortnightly(self, world: World) -> None:
        post = values_post(current(world), **{"cadence_days-pick": "own", "cadence_days-days": "7"})
        assert signed_in(world.manager).post(EDIT, post).status_code == 302
        days = current(world).document["cadence"]["days"]
        assert days["choose"] == "clinic"
        assert days["options"]["clinic"] == {
            "value": [7],
            "source": [S002],
            "note": "Within what Reducing Cellulite with Mesotherapy (every 7 or 14 days) gives.",
        }
        assert days["options"]["sourced"]["value"] == [7, 14]
        assert days["options"]["sourced"]["note"] == "Once a week or every other week."

    def test_a_value_outside_its_source_without_a_note_is_an_error_on_that_field(
        self, world: World
    ) -> None:
        post = values_post(
            current(world),
            **{"price_per_session-pick": "own", "price_per_session-min": "300"},
        )
        response = signed_in(world.manager).post(EDIT, post)
        assert response.status_code == 200
        form = response.context["values_form"]
        assert list(form.errors) == ["price_per_session-note"]
        message = form.errors["price_per_session-note"][0]
        assert "Price per session: USD 300–800 is outside what the sources give" in message
        assert "USD 500–800 from Reducing Cellulite with Mesotherapy" in message
        assert "Nothing was saved" in response.content.decode()
        assert versions(world) == [1]

    def test_a_value_outside_its_source_with_a_note_is_the_clinics_own_with_no_source(
        self, world: World
    ) -> None:
        post = values_post(
            current(world),
            **{
                "price_per_session-pick": "own",
                "price_per_session-min": "300",
                "price_per_session-max": "450",
                "price_per_session-currency": "eur",
                "price_per_session-note": "Our Paris price list, 2025.",
            },
        )
        assert signed_in(world.manager).post(EDIT, post).status_code == 302
        price = current(world).document["price_per_session"]
        assert price["choose"] == "clinic"
        assert price["options"]["clinic"] == {
            "value": {"min": 300.0, "max": 450.0, "currency": "EUR"},
            "source": [NO_SOURCE],
            "note": "Our Paris price list, 2025.",
        }
        # 002's figure is kept with its source, never relabelled as supporting ours.
        assert price["options"]["sourced"]["source"] == [S002]
        assert current(world).spec.price_per_session.v.currency == "EUR"

    def test_going_back_to_the_sourced_value_keeps_the_clinics_value_on_record(
        self, world: World
    ) -> None:
        client = signed_in(world.manager)
        own = {"sessions-pick": "own", "sessions-min": "12", "sessions-max": "25"}
        own["sessions-note"] = "Our patients need more sessions."
        assert client.post(EDIT, values_post(current(world), **own)).status_code == 302
        assert current(world).spec.sessions.v.max == 25
        back = values_post(current(world), **{"sessions-pick": "general"})
        assert client.post(EDIT, back).status_code == 302
        sessions = current(world).document["sessions"]
        assert sessions["choose"] == "general" and current(world).spec.sessions.v.max == 15
        assert sessions["options"]["clinic"]["source"] == [NO_SOURCE]
        assert versions(world) == [1, 2, 3]

    def test_a_value_with_no_source_needs_its_note(self, world: World) -> None:
        post = values_post(
            current(world),
            **{"cadence_tolerance_days-value": "3", "cadence_tolerance_days-note": ""},
        )
        response = signed_in(world.manager).post(EDIT, post)
        errors = response.context["values_form"].errors
        assert "no source gives this value" in errors["cadence_tolerance_days-note"][0]
        assert versions(world) == [1]
        post["cadence_tolerance_days-note"] = "Our booking system moves sessions by 3 days at most."
        assert signed_in(world.manager).post(EDIT, post).status_code == 302
        assert current(world).document["cadence"]["tolerance_days"] == {
            "value": 3,
            "source": [NO_SOURCE],
            "note": "Our booking system moves sessions by 3 days at most.",
        }

    def test_the_manager_chooses_between_sources_that_disagree(self, world: World) -> None:
        post = values_post(
            current(world),
            **{
                "choose-durability": "permanent_002",
                "choose-side_effects-3-expected_hours": "several_days_002",
            },
        )
        assert signed_in(world.manager).post(EDIT, post).status_code == 302
        spec = current(world).spec
        assert spec.durability.choose == "permanent_002"
        soreness = spec.side_effect("soreness")
        assert soreness is not None and soreness.expected_hours is not None
        assert soreness.expected_hours.v == 120

    def test_an_option_that_does_not_exist_is_refused(self, world: World) -> None:
        post = values_post(current(world), **{"choose-durability": "forever"})
        response = signed_in(world.manager).post(EDIT, post)
        assert "choose-durability" in response.context["values_form"].errors
        assert versions(world) == [1]

    def test_a_range_upside_down_is_an_error_on_its_upper_end(self, world: World) -> None:
        post = values_post(
            current(world), **{"sessions-pick": "own", "sessions-min": "18", "sessions-max": "16"}
        )
        response = signed_in(world.manager).post(EDIT, post)
        assert response.context["values_form"].errors["sessions-max"] == ["16 is below 18."]
        assert versions(world) == [1]

    def test_a_clinic_note_is_added_with_no_source_and_can_be_removed(self, world: World) -> None:
        client = signed_in(world.manager)
        post = values_post(
            current(world),
            new_note_topic="Parking",
            new_note_text="Patients park in the yard.",
        )
        assert client.post(EDIT, post).status_code == 302
        notes = current(world).document["notes"]
        assert notes[-1] == {
            "topic": "Parking",
            "text": "Patients park in the yard.",
            "source": [NO_SOURCE],
        }
        index = len(notes) - 1
        assert (
            client.post(EDIT, values_post(current(world), **{f"note-{index}-text": ""})).status_code
            == 302
        )
        assert [n["topic"] for n in current(world).document["notes"]] == [
            "What cellulite is",
            "Regulatory status",
        ]

    def test_a_change_note_is_required(self, world: World) -> None:
        post = values_post(
            current(world),
            **{"cadence_days-pick": "own", "cadence_days-days": ["7"], "change_note": "  "},
        )
        response = signed_in(world.manager).post(EDIT, post)
        assert "change_note" in response.context["values_form"].errors
        assert versions(world) == [1]

    def test_saving_nothing_new_saves_no_version(self, world: World) -> None:
        response = signed_in(world.manager).post(EDIT, values_post(current(world)))
        assert "Nothing changed" in errors_of(response)
        assert versions(world) == [1]

    def test_a_form_opened_before_another_save_saves_nothing(self, world: World) -> None:
        stale = values_post(
            current(world), **{"cadence_days-pick": "own", "cadence_days-days": ["14"]}
        )
        do_edit_protocol(world.clinic, "cellulite", current(world).document, world.front_desk, "")
        response = signed_in(world.manager).post(EDIT, stale)
        assert (
            "now at version 2, saved by Frontdesk, not the version 1 this form was opened on"
            in errors_of(response)
        )
        assert versions(world) == [1, 2]


class DocumentEditTests:
    def test_the_whole_document_saves_as_the_next_version(self, world: World) -> None:
        protocol = current(world)
        doc = protocol.document
        doc["allergy_test"]["wait_hours"] = {
            "value": 48,
            "source": [NO_SOURCE],
            "note": "Our insurer asks for 48 h.",
        }
        response = signed_in(world.manager).post(EDIT, document_post(doc, protocol))
        assert response.status_code == 302
        assert current(world).spec.allergy_test.wait_hours.v == 48
        assert current(world).change_note == "Edited by hand"

    def test_a_malformed_document_shows_each_problem_and_saves_nothing(self, world: World) -> None:
        protocol = current(world)
        doc = protocol.document
        doc["sessions"]["options"]["general"]["value"] = {"min": 15, "max": 10}
        doc["cadence"]["tolerance_days"]["note"] = ""
        doc["price_per_session"]["source"] = ["009_made_up.txt"]
        response = signed_in(world.manager).post(EDIT, document_post(doc, protocol))
        assert response.status_code == 200
        problems = response.context["document_form"].errors["document"]
        assert len(problems) == 3
        joined = " | ".join(problems)
        assert "sessions.options.general.value: min (15) is above max (10)" in joined
        assert 'cadence.tolerance_days: a value with "no source" needs a note' in joined
        assert "price_per_session.source: '009_made_up.txt' is not one of the seed files" in joined
        page = response.content.decode()
        assert "Nothing was saved" in page and "<details" in page and " open>" in page
        assert versions(world) == [1]
        assert not web_audits().exists()

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ('{"key": "cellulite",', "(syntax): not valid JSON at line 1"),
            ("key = ", "(syntax): neither JSON"),
            ("[1, 2]", "(syntax): neither JSON"),
            ('{"key": "localized_fat"}', "key: is 'localized_fat' but must be 'cellulite'"),
        ],
    )
    def test_a_document_that_is_not_a_protocol_is_refused(
        self, world: World, text: str, expected: str
    ) -> None:
        response = signed_in(world.manager).post(EDIT, document_post(text, current(world)))
        assert expected in errors_of(response)
        assert versions(world) == [1]

    def test_a_protocol_file_in_toml_is_accepted(self, world: World) -> None:
        from mesoclinic.protocols.loader import PROTOCOL_DIR

        text = (PROTOCOL_DIR / "cellulite.toml").read_text()
        text = text.replace('name = "Cellulite (body)"', 'name = "Cellulite, our way"')
        response = signed_in(world.manager).post(EDIT, document_post(text, current(world)))
        assert response.status_code == 302
        assert current(world).name == "Cellulite, our way"


class ProtocolAccessTests:
    PAGES = ("/manage/protocols/", "/manage/protocols/cellulite/", EDIT)

    @pytest.mark.parametrize("role", ["practitioner", "front_desk"])
    def test_other_roles_are_forbidden_every_page_and_post(self, world: World, role: str) -> None:
        client = signed_in(getattr(world, role))
        for url in self.PAGES:
            assert client.get(url).status_code == 403, url
        post = values_post(
            current(world), **{"cadence_days-pick": "own", "cadence_days-days": ["7"]}
        )
        assert client.post(EDIT, post).status_code == 403
        assert (
            client.post(EDIT, document_post(current(world).document, current(world))).status_code
            == 403
        )
        assert versions(world) == [1]

    def test_only_managers_see_the_protocols_link(self, world: World) -> None:
        link = 'href="/manage/protocols/"'
        page = signed_in(world.manager).get("/manage/protocols/").content.decode()
        assert f'{link} aria-current="page"' in page
        for user in (world.practitioner, world.front_desk):
            assert link not in signed_in(user).get("/today/").content.decode()

    def test_a_visitor_is_sent_to_sign_in(self, world: World) -> None:
        for url in self.PAGES:
            response = Client().get(url)
            assert response.status_code == 302 and "/login/" in response["Location"], url

    def test_a_protocol_the_clinic_does_not_have_is_404(self, world: World) -> None:
        client = signed_in(world.manager)
        assert client.get("/manage/protocols/botox/").status_code == 404
        assert client.get("/manage/protocols/botox/edit/").status_code == 404
        assert client.get("/manage/protocols/cellulite/?version=7").status_code == 404

    def test_another_clinics_edits_never_show_or_touch_this_clinic(
        self, world: World, other: World
    ) -> None:
        post = values_post(
            current(other),
            **{
                "cadence_days-pick": "own",
                "cadence_days-days": ["14"],
                "change_note": "Fortnightly in Paris",
            },
        )
        assert signed_in(other.manager).post(EDIT, post).status_code == 302
        assert versions(other) == [1, 2] and versions(world) == [1]
        client = signed_in(world.manager)
        for url in self.PAGES:
            assert "Fortnightly in Paris" not in client.get(url).content.decode(), url
        assert client.get("/manage/protocols/cellulite/?version=2").status_code == 404
        # This clinic's form, posted with the other clinic's version number, saves nothing.
        stale = values_post(
            current(world),
            **{"cadence_days-pick": "own", "cadence_days-days": ["7"], "base_version": "2"},
        )
        assert "not the version 2 this form was opened on" in errors_of(client.post(EDIT, stale))
        assert versions(world) == [1]


class ProtocolAuditTests:
    def test_a_save_is_audited_like_the_api_with_what_changed(self, world: World) -> None:
        post = values_post(
            current(world),
            **{
                "cadence_days-pick": "own",
                "cadence_days-days": ["7"],
                "choose-durability": "permanent_002",
            },
        )
        signed_in(world.manager).post(EDIT, post)
        event = web_audits().get()
        new = current(world)
        assert event.clinic == world.clinic and event.user == world.manager
        assert event.object_id == str(new.pk)
        assert event.detail["version"] == 2 and event.detail["note"] == "Our own course plan"
        assert event.detail["editor"] == "values"
        assert event.detail["changed"] == ["cadence.days", "durability"]

    def test_a_refused_save_writes_no_audit(self, world: World) -> None:
        post = values_post(current(world), **{"sessions-pick": "own", "sessions-min": "2"})
        signed_in(world.manager).post(EDIT, post)
        assert versions(world) == [1]
        assert not web_audits().exists()


class InstalledNoteTests:
    """A clinic's first version of each shipped protocol says where it came from in words,
    never by the name of the file it was read from."""

    OLD_NOTES = (
        "Installed from cellulite.toml (file version 1)",
        "Installed with mesoclinic (protocol version 1)",
    )

    def test_a_new_clinics_protocols_are_noted_in_words(self, world: World) -> None:
        first = ClinicProtocol.objects.get(clinic=world.clinic, key="cellulite", version=1)
        assert first.change_note == "Installed from mesoclinic's standard protocols (version 1)"
        assert ".toml" not in first.change_note

    @pytest.mark.parametrize("old", OLD_NOTES)
    def test_an_old_note_reads_in_words_on_the_pages_and_in_the_api(
        self, world: World, old: str
    ) -> None:
        ClinicProtocol.objects.filter(clinic=world.clinic, key="cellulite").update(change_note=old)
        words = "Installed from mesoclinic's standard protocols (version 1)"
        client = signed_in(world.manager)
        for path in ("/manage/protocols/", "/manage/protocols/cellulite/"):
            page = html.unescape(client.get(path).content.decode())
            assert words in page, path
            assert old not in page and "cellulite.toml" not in page, path
        body = api_for(world.manager).get("/protocols/cellulite").json()
        assert body["versions"][-1]["change_note"] == words

    def test_the_data_migration_rewrites_old_notes_and_leaves_others(self, world: World) -> None:
        rows = ClinicProtocol.objects.filter(clinic=world.clinic).order_by("key")
        first, second = rows[0], rows[1]
        first.change_note = self.OLD_NOTES[0]
        first.save(update_fields=["change_note"])
        second.change_note = "Installed from cellulite.toml, checked by Dr Roy"  # a person's own
        second.save(update_fields=["change_note"])
        migration = importlib.import_module(
            "mesoclinic.protocols.migrations.0002_installed_note_in_words"
        )
        migration.rewrite(django_apps, None)
        first.refresh_from_db()
        second.refresh_from_db()
        assert first.change_note == "Installed from mesoclinic's standard protocols (version 1)"
        assert second.change_note == "Installed from cellulite.toml, checked by Dr Roy"
