"""Every read of patient data leaves an audit row naming the patient.

The walk is generated: every page of the URL conf and every GET of the OpenAPI schema is
fetched by a caller allowed to read it, and any answer that carries the scene's patient (their
name, their id as `patient`, or a route about one of their records) must have written a VIEW
(or, for a PDF, a CSV or an image, an EXPORT) row with that patient's id. A new route that shows
a patient and forgets its audit row fails here without anyone listing it."""

from __future__ import annotations

import datetime as dt
import re

from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent
from tests.conftest import iso
from tests.routes import (
    Objects,
    api_operations,
    objects_fixture,  # noqa: F401 - the `objects` fixture
    web_routes,
)

READS = [AuditEvent.Action.VIEW, AuditEvent.Action.EXPORT]
# Route parameters that name one of a patient's records: the answer is about that patient.
PATIENT_SCOPED = re.compile(
    r"[<{](?:int:)?(patient_id|course_id|session_id|test_id|consent_id|effect_id|follow_up_id"
    r"|appointment_id|event_id|photo_id|request_id|notice_id|prompt_id|str:token)[>}]"
)
# Routes that are the patient's own links: fetched with no login, as the patient would.
LINK_ROUTES = ("r/", "w/", "n/", "feeds/")
# The patient portal's pages: fetched by the patient's own login.
PORTAL_ROUTES = ("my/",)


def _query(objects: Objects, path: str) -> str:
    """The query a list needs to show the scene's patient."""
    now = timezone.now()
    return {
        "patients/": "?q=Lopez",
        "/patients": "?q=Lopez",
        "/appointments": f"?start={iso(now - dt.timedelta(days=1))}"
        f"&end={iso(now + dt.timedelta(days=3))}".replace("+", "%2B"),
        "/calendar/next-free": f"?practitioner={objects.scene.world.practitioner.pk}"
        f"&patient={objects.scene.patient.pk}",
    }.get(path, "")


def _shows_patient(objects: Objects, route: str, body: bytes) -> bool:
    patient = objects.scene.patient
    text = body.decode("utf-8", "replace")
    return bool(
        PATIENT_SCOPED.search(route)
        or patient.last_name in text
        or re.search(rf'"patient(_id)?": ?{patient.pk}\b', text)
    )


def _last_id() -> int:
    return AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


class ReadAuditTests:
    def test_every_page_that_shows_a_patient_records_who_read_it(self, objects: Objects) -> None:
        patient_id = objects.scene.patient.pk
        checked, missing = [], []
        for route, name in web_routes():
            if route.startswith("accounts/") or route == "":
                continue
            who = "anonymous" if route.startswith(LINK_ROUTES) else "manager"
            if route.startswith(PORTAL_ROUTES):
                who = "patient_own"
            before = _last_id()
            r = objects.web(who).get(objects.fill(route) + _query(objects, route))
            if r.status_code != 200:
                continue  # A form that only takes a POST, or a redirect.
            body = b"".join(r.streaming_content) if r.streaming else r.content
            if not _shows_patient(objects, route, body):
                continue
            checked.append(name)
            rows = AuditEvent.objects.filter(pk__gt=before, action__in=READS, patient_id=patient_id)
            if not rows.exists():
                missing.append(f"{name} ({route})")
        assert missing == [], f"these pages show a patient and record no read: {missing}"
        # The walk found the pages the trail is most about; if one stops showing the patient
        # the walk would pass for the wrong reason.
        assert {
            "today",
            "patients",
            "chart",
            "screen",
            "calendar",
            "calendar_appointment",
            "session",
            "consent_pdf",
            "photo_image",
            "calendar_feed",
            "confirm",
            "change",
            "watch",
            "notice",
            "adverse_events",
        } - set(checked) == set()

    def test_every_api_answer_about_a_patient_records_who_read_it(self, objects: Objects) -> None:
        patient_id = objects.scene.patient.pk
        checked, missing = [], []
        for method, path in api_operations():
            if method != "GET":
                continue
            before = _last_id()
            r = objects.api("manager").get(objects.fill(path) + _query(objects, path))
            assert r.status_code == 200, (path, r.status_code, r.content[:300])
            body = b"".join(r.streaming_content) if r.streaming else r.content
            if not _shows_patient(objects, path, body):
                continue
            checked.append(path)
            rows = AuditEvent.objects.filter(pk__gt=before, action__in=READS, patient_id=patient_id)
            if not rows.exists():
                missing.append(path)
        assert missing == [], f"these answers carry a patient and record no read: {missing}"
        assert {
            "/patients",
            "/patients/{patient_id}",
            "/courses/{course_id}/session-check",
            "/follow-ups",
            "/appointments",
            "/patients/{patient_id}/consent-text",
            "/courses/{course_id}/maintenance",
        } - set(checked) == set()

    def test_a_list_writes_one_row_per_patient_shown(self, objects: Objects) -> None:
        before = _last_id()
        r = objects.api("manager").get("/follow-ups")
        assert r.status_code == 200
        rows = list(AuditEvent.objects.filter(pk__gt=before))
        assert [(e.action, e.patient_id, e.detail["page"]) for e in rows] == [
            ("view", objects.scene.patient.pk, "follow-ups")
        ]

    def test_a_refused_read_records_nothing(self, objects: Objects) -> None:
        before = _last_id()
        r = objects.api("front_desk").get("/follow-ups")
        assert r.status_code == 403
        r = objects.api("other_clinic").get(f"/patients/{objects.scene.patient.pk}")
        assert r.status_code == 404
        assert not AuditEvent.objects.filter(pk__gt=before).exists()

    def test_the_cadence_flags_record_each_patient_flagged(self, objects: Objects) -> None:
        # The scene has no broken cadence; a missed session visit makes one.
        from mesoclinic.scheduling.actions import do_mark_no_show
        from mesoclinic.scheduling.models import Appointment

        scene = objects.scene
        Appointment.objects.filter(pk=scene.started).update(
            course_id=scene.course["id"], kind="session"
        )
        do_mark_no_show(Appointment.objects.get(pk=scene.started), user=scene.world.front_desk)
        before = _last_id()
        flags = objects.api("front_desk").get("/calendar/cadence-flags").json()
        assert [f["patient"] for f in flags] == [scene.patient.pk]
        rows = AuditEvent.objects.filter(pk__gt=before, action=AuditEvent.Action.VIEW)
        assert [(e.patient_id, e.detail["page"]) for e in rows] == [
            (scene.patient.pk, "cadence flags")
        ]
