"""The portal's home page costs the same number of queries however many sessions the patient
has had: each session's aftercare reads its areas from injections fetched at once (the pages
benchmark measures its time at ten times the demo)."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from mesoclinic.courses.models import Session, SessionInjection
from tests.conftest import Scene
from tests.test_portal import signed_in_patient


def _queries(client: object) -> int:
    with CaptureQueriesContext(connection) as done:
        response = client.get("/my/")  # type: ignore[attr-defined]
    assert response.status_code == 200
    return len(done.captured_queries)


def test_the_home_page_does_not_query_once_per_session(scene: Scene) -> None:
    client = signed_in_patient(scene.patient)
    one = _queries(client)
    first = Session.objects.get(pk=scene.session["id"])
    injections = list(first.injections.all())
    assert injections
    for number in (2, 3, 4):
        copy = Session.objects.get(pk=first.pk)
        copy.pk = None
        copy.number = number
        copy.save()
        # Stored as rows, past the safety gate: only the page's cost is under test here.
        SessionInjection.objects.bulk_create(
            SessionInjection(
                session=copy, area=i.area, lot=i.lot, volume_ml=i.volume_ml, technique=i.technique
            )
            for i in injections
        )
    page = client.get("/my/").content.decode()
    assert page.count("Aftercare") >= 1
    assert _queries(client) == one
