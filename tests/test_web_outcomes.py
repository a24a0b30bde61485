"""Measurements and progress in the web: the visit form, the chart's progress panel, the
progress page, the progress report PDF and the clinic's baseline setting."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from django.utils import timezone
from pypdf import PdfReader

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.courses.models import Course
from mesoclinic.outcomes import scales
from mesoclinic.outcomes.models import Measurement
from mesoclinic.patients.models import Patient
from tests.conftest import World, ago
from tests.test_outcomes import fresh_course
from tests.test_web import signed_in

SVG = "{http://www.w3.org/2000/svg}"


def local(moment: Any, world: World) -> str:
    return moment.astimezone(world.clinic.tz).strftime("%Y-%m-%dT%H:%M")


def visit_data(world: World, **changes: Any) -> dict[str, Any]:
    data = {
        "taken_at": local(ago(days=2), world),
        "area": "thighs",
        "hexsel_number": "3",
        "hexsel_depth": "2",
        "hexsel_morphology": "2",
        "hexsel_laxity": "1",
        "hexsel_nurnberger_muller": "2",
        "nm": "2",
        "circ_waist": "81.5",
        "circ_thigh_left": "57",
        "weight": "70.2",
    }
    data.update(changes)
    return data


@pytest.fixture
def course(world: World, patient: Patient) -> Course:
    return fresh_course(world, patient)


def with_baseline(world: World, course: Course) -> None:
    r = signed_in(world.practitioner).post(
        f"/courses/{course.pk}/measurements/new/", visit_data(world)
    )
    assert r.status_code == 302, r.content.decode()[:2000]


class RecordVisitTests:
    def test_a_practitioner_records_a_visit_and_returns_to_the_chart(
        self, world: World, patient: Patient, course: Course
    ) -> None:
        client = signed_in(world.practitioner)
        form = client.get(f"/courses/{course.pk}/measurements/new/")
        assert form.status_code == 200
        assert "these will be the course's baseline" in form.content.decode()
        r = client.post(f"/courses/{course.pk}/measurements/new/", visit_data(world))
        assert r.status_code == 302
        assert r["Location"] == f"/patients/{patient.pk}/#course-{course.pk}"
        kinds = sorted(Measurement.objects.values_list("kind", "site", "value"))
        assert [(k, s, str(v)) for k, s, v in kinds] == [
            ("circumference", "thigh_left", "57.0"),
            ("circumference", "waist", "81.5"),
            ("hexsel_css", "", "10.0"),
            ("nurnberger_muller", "", "2.0"),
            ("weight", "", "70.2"),
        ]
        events = AuditEvent.objects.filter(object_type="outcomes.Measurement")
        assert events.count() == 5 and {e.via for e in events} == {"web"}
        assert {e.patient_id for e in events} == {patient.pk}

    def test_a_bad_value_is_shown_on_its_field_and_nothing_is_saved(
        self, world: World, course: Course
    ) -> None:
        r = signed_in(world.practitioner).post(
            f"/courses/{course.pk}/measurements/new/",
            visit_data(world, weight="-3", hexsel_depth="5"),
        )
        assert r.status_code == 400
        form = r.context["form"]
        assert "more than 0 kg" in form.errors["weight"][0]
        assert "must be from 0 to 3, not 5" in form.errors["hexsel_depth"][0]
        assert not Measurement.objects.exists()

    def test_a_date_before_the_course_is_refused_on_taken_at(
        self, world: World, course: Course
    ) -> None:
        r = signed_in(world.practitioner).post(
            f"/courses/{course.pk}/measurements/new/",
            visit_data(world, taken_at=local(ago(days=9), world)),
        )
        assert r.status_code == 400
        assert "is before the course" in r.context["form"].errors["taken_at"][0]

    def test_an_empty_form_asks_for_at_least_one_measurement(
        self, world: World, course: Course
    ) -> None:
        r = signed_in(world.practitioner).post(
            f"/courses/{course.pk}/measurements/new/",
            {"taken_at": local(ago(days=2), world)},
        )
        assert r.status_code == 400
        assert "enter at least one measurement" in r.content.decode()

    def test_the_front_desk_may_not_record(self, world: World, course: Course) -> None:
        client = signed_in(world.front_desk)
        assert client.get(f"/courses/{course.pk}/measurements/new/").status_code == 403
        r = client.post(f"/courses/{course.pk}/measurements/new/", visit_data(world))
        assert r.status_code == 403
        assert not Measurement.objects.exists()

    def test_another_clinic_gets_404(self, world: World, other: World, course: Course) -> None:
        r = signed_in(other.practitioner).post(
            f"/courses/{course.pk}/measurements/new/", visit_data(world)
        )
        assert r.status_code == 404
        assert not Measurement.objects.exists()


class ChartPanelTests:
    def test_the_chart_asks_for_the_baseline_and_names_the_gate(
        self, world: World, patient: Patient, course: Course
    ) -> None:
        page = signed_in(world.practitioner).get(f"/patients/{patient.pk}/").content.decode()
        assert "Record the baseline" in page
        assert "Session 1 needs a baseline first" in page
        assert "No measurement yet." in page

    def test_after_the_baseline_the_course_card_draws_the_chart(
        self, world: World, patient: Patient, course: Course
    ) -> None:
        with_baseline(world, course)
        page = signed_in(world.front_desk).get(f"/patients/{patient.pk}/").content.decode()
        assert "Session 1 needs a baseline first" not in page
        assert "Record the baseline" not in page  # the front desk does not record
        start = page.index('<svg xmlns="http://www.w3.org/2000/svg"')
        svg = ET.fromstring(page[start : page.index("</svg>", start) + len("</svg>")])
        assert svg.findtext(f"{SVG}title") == "Hexsel CSS, Thighs (points) by sessions done"
        assert [c.get("data-value") for c in svg.findall(f"{SVG}circle")] == ["10"]
        label = svg.find(f"{SVG}text[@class='expected-label']")
        assert label is not None and "a single source" in "".join(label.itertext())
        assert f"/courses/{course.pk}/progress.pdf" in page
        assert "<caption>Hexsel CSS, Thighs (points) by sessions done</caption>" in page


class ProgressPageTests:
    def test_it_shows_every_series_with_its_table_and_is_audited(
        self, world: World, patient: Patient, course: Course
    ) -> None:
        with_baseline(world, course)
        r = signed_in(world.front_desk).get(f"/courses/{course.pk}/progress/")
        assert r.status_code == 200
        page = r.content.decode()
        assert page.count("<svg") == 5  # Hexsel, NM, two circumferences, weight
        assert "Circumference, Waist (cm)" in page and "LOINC 8280-0" in page
        assert "From 10 to 10 points: ±0 points (±0.0 %)" in page
        event = AuditEvent.objects.filter(action="view", detail__page="progress").get()
        assert (event.patient_id, event.user) == (patient.pk, world.front_desk)

    def test_another_clinic_gets_404(self, world: World, other: World, course: Course) -> None:
        assert signed_in(other.manager).get(f"/courses/{course.pk}/progress/").status_code == 404
        assert signed_in(other.manager).get(f"/courses/{course.pk}/progress.pdf").status_code == 404


class ProgressPdfTests:
    def test_it_prints_each_series_the_trajectory_with_its_source_and_the_change(
        self, world: World, patient: Patient, course: Course
    ) -> None:
        with_baseline(world, course)
        Measurement.objects.create(
            clinic=world.clinic,
            course=course,
            kind=scales.HEXSEL,
            area="thighs",
            value=7,
            items={},
            taken_at=timezone.now(),
        )
        r = signed_in(world.practitioner).get(f"/courses/{course.pk}/progress.pdf")
        assert r.status_code == 200 and r["Content-Type"] == "application/pdf"
        text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(r.content)).pages).replace(
            "\n", " "
        )
        assert "Progress report for Ana Lopez" in text
        assert "Hexsel CSS, Thighs" in text and "Circumference, Waist" in text
        assert "Reducing Cellulite with Mesotherapy" in text and "a single source" in text
        assert "From 10 to 7 points: −3 points (−30.0 %)" in text
        assert "-30.0 %" in text  # the table's change column
        event = AuditEvent.objects.get(action="export")
        assert event.detail["document"] == "progress_report" and event.patient_id == patient.pk


def clinic_details(world: World, **changes: str) -> dict[str, str]:
    """The clinic details form as the page sends it: every field as it is, then `changes`;
    the baseline box is unticked unless `changes` ticks it."""
    clinic = world.clinic
    data = {
        "name": clinic.name,
        "address": clinic.address,
        "city": clinic.city,
        "phone": clinic.phone,
        "timezone": clinic.timezone,
        "currency": clinic.currency,
        "date_format": clinic.date_format,
        "time_format": clinic.time_format,
        "locale": clinic.locale,
    }
    return data | changes


class BaselineSettingTests:
    def test_the_manager_turns_the_baseline_off_and_it_is_audited(
        self, world: World, patient: Patient, course: Course
    ) -> None:
        client = signed_in(world.manager)
        assert 'href="/manage/clinic/"' in client.get("/manage/staff/").content.decode()
        r = client.post("/manage/clinic/", clinic_details(world))
        assert r.status_code == 302
        world.clinic.refresh_from_db()
        assert world.clinic.baseline_required is False
        event = AuditEvent.objects.get(object_type="accounts.Clinic")
        assert (event.action, event.detail) == ("update", {"baseline_required": False})
        page = client.get(f"/patients/{patient.pk}/").content.decode()
        assert "Session 1 needs a baseline first" not in page
        client.post("/manage/clinic/", clinic_details(world, baseline_required="on"))
        world.clinic.refresh_from_db()
        assert world.clinic.baseline_required is True

    def test_the_clinic_phone_is_checked_saved_and_audited(self, world: World) -> None:
        client = signed_in(world.manager)
        r = client.post(
            "/manage/clinic/", clinic_details(world, phone="call us!", baseline_required="on")
        )
        assert r.status_code == 200
        assert r.context["form"].errors["phone"] == [
            "Enter a phone number of 6 to 20 digits, spaces or + ( ) - ."
        ]
        world.clinic.refresh_from_db()
        assert world.clinic.phone == ""
        client.post(
            "/manage/clinic/",
            clinic_details(world, phone="+1 212 555 0100", baseline_required="on"),
        )
        world.clinic.refresh_from_db()
        assert world.clinic.phone == "+1 212 555 0100"
        event = AuditEvent.objects.get(object_type="accounts.Clinic")
        assert event.detail == {"phone": "+1 212 555 0100"}

    def test_a_practitioner_may_not_change_it(self, world: World) -> None:
        r = signed_in(world.practitioner).post("/manage/clinic/", {})
        assert r.status_code == 403
        world.clinic.refresh_from_db()
        assert world.clinic.baseline_required is True
