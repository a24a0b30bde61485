"""Correcting a measurement's value or an allergy test reading's result (issue 12): each is
corrected with a reason, the value as charted stays on record and in view, every correction
is audited, only clinical staff of the clinic may make one, progress and analytics read the
corrected value, and the session gate reads the corrected reading."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.courses import actions
from mesoclinic.courses.models import AllergyReading, Amendment, Course, SessionRefused
from mesoclinic.outcomes import analytics, progress
from mesoclinic.outcomes.actions import do_amend_measurement, do_record_measurement
from mesoclinic.outcomes.logic import Raw
from mesoclinic.outcomes.models import Measurement
from mesoclinic.patients.models import Patient
from tests.conftest import World, ago
from tests.test_courses import chart, ready_course
from tests.test_web import signed_in


def waist(world: World, course: Course, cm: str = "80.0") -> Measurement:
    return do_record_measurement(
        course,
        Raw(kind="circumference", site="waist", value=cm),
        taken_at=timezone.now() - dt.timedelta(minutes=5),
        user=world.practitioner,
    )


def reading_of(course: Course) -> AllergyReading:
    return AllergyReading.objects.get(test__course=course)


def amend_reading_url(reading: AllergyReading) -> str:
    return f"/allergy-tests/{reading.test_id}/readings/{reading.pk}/amend/"


class MeasurementAmendmentTests:
    def test_a_value_is_corrected_with_a_reason_and_the_original_stays_in_view(
        self, world: World, patient: Patient
    ) -> None:
        course = ready_course(world, patient, ago(days=3))
        m = waist(world, course, "80.0")
        client = signed_in(world.practitioner)
        url = f"/measurements/{m.pk}/amend/"
        refused = client.post(url, {"value": "78.0", "reason": " "})
        assert refused.status_code == 400 and "reason" in refused.context["form"].errors
        bad = client.post(url, {"value": "-3", "reason": "Typo."})
        assert bad.status_code == 400 and "more than 0" in bad.context["form"].errors["value"][0]
        done = client.post(url, {"value": "78.0", "reason": "Tape read twice."})
        assert done["Location"] == f"/courses/{course.pk}/progress/"
        m.refresh_from_db()
        assert (m.value, m.charted_value) == (Decimal("78.0"), Decimal("80.0"))
        amendment = Amendment.objects.get(measurement=m)
        assert (amendment.original, amendment.amended) == ("80.0", "78.0")
        assert amendment.amended_by == world.practitioner
        assert AuditEvent.objects.filter(
            object_type="outcomes.Measurement",
            object_id=str(m.pk),
            action=AuditEvent.Action.UPDATE,
            detail__amended="value",
            detail__reason="Tape read twice.",
        ).exists()
        page = client.get(f"/courses/{course.pk}/progress/").content.decode()
        assert "78.0 cm" in page and "(amended; charted as 80.0 cm)" in page
        history = client.get(url).content.decode()
        assert "Tape read twice." in history and "Was “80.0 cm”; now “78.0 cm”" in history

    def test_a_second_correction_keeps_the_value_first_charted(
        self, world: World, patient: Patient
    ) -> None:
        course = ready_course(world, patient, ago(days=3))
        m = waist(world, course, "80.0")
        do_amend_measurement(m, value="78.0", reason="Typo.", user=world.practitioner)
        do_amend_measurement(m, value="79.0", reason="Typo again.", user=world.practitioner)
        m.refresh_from_db()
        assert (m.value, m.charted_value) == (Decimal("79.0"), Decimal("80.0"))
        with pytest.raises(ValidationError) as same:
            do_amend_measurement(m, value="79.0", reason="Again.", user=world.practitioner)
        assert "value" in same.value.message_dict

    def test_progress_and_analytics_read_the_corrected_value(
        self, world: World, patient: Patient
    ) -> None:
        course = ready_course(world, patient, ago(days=3))
        m = waist(world, course, "80.0")
        do_amend_measurement(m, value="78.5", reason="Typo.", user=world.practitioner)
        points = [p.value for s in progress.course_progress(course).series for p in s.points]
        assert Decimal("78.5") in points and Decimal("80.0") not in points
        data = analytics.extract(world.clinic, timezone.localdate() + dt.timedelta(days=1))
        table = data.tables["measurements"]
        by_id = dict(zip(table["id"].tolist(), table["v10"].tolist(), strict=True))
        assert by_id[m.pk] == 785

    def test_a_hexsel_total_is_not_corrected_by_hand(self, world: World, patient: Patient) -> None:
        course = ready_course(world, patient, ago(days=3))
        hexsel = Measurement.objects.get(course=course, kind="hexsel_css")
        with pytest.raises(ValidationError) as refused:
            do_amend_measurement(hexsel, value="3", reason="Typo.", user=world.practitioner)
        assert "sum of its five items" in refused.value.message_dict["value"][0]

    def test_front_desk_is_refused_and_another_clinic_does_not_find_it(
        self, world: World, other: World, patient: Patient
    ) -> None:
        course = ready_course(world, patient, ago(days=3))
        m = waist(world, course)
        url = f"/measurements/{m.pk}/amend/"
        assert signed_in(world.front_desk).get(url).status_code == 403
        assert (
            signed_in(world.front_desk).post(url, {"value": "1", "reason": "x"}).status_code == 403
        )
        assert signed_in(other.manager).get(url).status_code == 404
        assert signed_in(world.manager).get(url).status_code == 200
        m.refresh_from_db()
        assert m.value == Decimal("80.0") and not Amendment.objects.exists()


class ReadingAmendmentTests:
    def test_a_result_is_corrected_with_a_reason_and_the_chart_shows_both(
        self, world: World, patient: Patient
    ) -> None:
        course = ready_course(world, patient, ago(days=3))
        reading = reading_of(course)
        client = signed_in(world.practitioner)
        url = amend_reading_url(reading)
        refused = client.post(url, {"result": "local", "reason": ""})
        assert refused.status_code == 400 and "reason" in refused.context["form"].errors
        same = client.post(url, {"result": "none", "reason": "Checked."})
        assert same.status_code == 400 and "result" in same.context["form"].errors
        done = client.post(url, {"result": "local", "reason": "Redness missed at the reading."})
        assert done.status_code == 302
        reading.refresh_from_db()
        assert (reading.result, reading.charted_result) == ("local", "none")
        assert Amendment.objects.get(allergy_reading=reading).reason == (
            "Redness missed at the reading."
        )
        assert AuditEvent.objects.filter(
            object_type="courses.AllergyReading",
            object_id=str(reading.pk),
            action=AuditEvent.Action.UPDATE,
            detail__amended="result",
            detail__original="none",
            detail__value="local",
        ).exists()
        page = client.get(f"/patients/{patient.pk}/").content.decode()
        assert "<strong>Local reaction</strong>" in page
        assert "(amended; charted as no reaction)" in page
        history = client.get(url).content.decode()
        assert "Was “No reaction”; now “Local reaction”" in history

    def test_the_session_gate_reads_the_corrected_reading(
        self, world: World, patient: Patient
    ) -> None:
        course = ready_course(world, patient, ago(days=30))
        chart(world, course, ago(days=20))
        actions.do_amend_allergy_reading(
            reading_of(course), result="local", reason="Redness missed.", user=world.practitioner
        )
        with pytest.raises(SessionRefused) as refused:
            chart(world, course, ago(days=10))
        assert "allergy_reaction" in [r.code for r in refused.value.refusals]

    def test_front_desk_is_refused_and_another_clinic_does_not_find_it(
        self, world: World, other: World, patient: Patient
    ) -> None:
        course = ready_course(world, patient, ago(days=3))
        reading = reading_of(course)
        url = amend_reading_url(reading)
        assert signed_in(world.front_desk).get(url).status_code == 403
        assert signed_in(other.manager).get(url).status_code == 404
        assert signed_in(world.manager).get(url).status_code == 200
        # A reading is found only under its own test.
        other_course = ready_course(world, patient, ago(days=3))
        wrong = f"/allergy-tests/{reading_of(other_course).test_id}/readings/{reading.pk}/amend/"
        assert signed_in(world.manager).get(wrong).status_code == 404

    def test_an_amendment_names_exactly_one_record(self, world: World, patient: Patient) -> None:
        from django.db import IntegrityError, transaction

        course = ready_course(world, patient, ago(days=3))
        m = waist(world, course)
        with pytest.raises(IntegrityError), transaction.atomic():
            Amendment.objects.create(
                clinic=world.clinic,
                measurement=m,
                allergy_reading=reading_of(course),
                field="value",
                reason="Both.",
                amended_by=world.practitioner,
            )
