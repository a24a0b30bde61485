"""No internal name reaches a person: the main pages of the demo clinic, the aftercare email
and the protocol pages are read as a person sees them (the text, not the markup), and
searched for the words only the code uses and for the broken phrases a review found.

The demo loads once for the class (several seconds), in a transaction rolled back at the end.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction
from django.test import Client

from mesoclinic import demo
from mesoclinic.accounts.models import Clinic, User
from mesoclinic.courses.models import Course, Session
from mesoclinic.patients.models import Patient
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.safety.models import SafetyAlert
from mesoclinic.web.session import aftercare_text

# What only the code says, and the phrases the review found broken.
FORBIDDEN = {
    "the word SPEC": re.compile(r"\bSPEC\b"),
    "a seed by number": re.compile(r"\bseeds? ?\d", re.I),
    "a seed file name": re.compile(r"\d{3}_[0-9a-f]{16}\.txt"),
    "a data or code file name": re.compile(r"\b[\w-]+\.(?:toml|py|json|ya?ml)\b", re.I),
    "an article by its number alone": re.compile(r"(?<![\d.,:/+-])\b00[0-4]\b(?![\d.,:%])"),
    "a stored key with underscores": re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b"),
    "an option key": re.compile(r"\bsessions \d \d\b|\b[a-z]+ 00[0-4]\b"),
    "a reference key": re.compile(r"\bnurnberger[ _]muller\b", re.I),
    "zero days": re.compile(r"\b0 days\b"),
    "doubled punctuation": re.compile(r"\)\.\)\.|\.\.(?!\.)"),
    "a bad plural": re.compile(r"\ballergys\b|\b1 (?:sessions|visits|days|patients)\b", re.I),
    "works none": re.compile(r"\b(?:works|open) none\b"),
}


def visible_text(page: str) -> str:
    """The words a person reads: no scripts, no tags or attributes, no addresses."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    page = re.sub(r"<[^>]+>", " ", page)
    text = html.unescape(page)
    # Email addresses and web addresses are the patient's or the clinic's own.
    text = re.sub(r"\S+@\S+|https?://\S+", " ", text)
    return " ".join(text.split())


def problems(text: str) -> list[str]:
    found = []
    for what, pattern in FORBIDDEN.items():
        for m in pattern.finditer(text):
            found.append(f"{what}: …{text[max(0, m.start() - 60) : m.end() + 60]}…")
    return found


@pytest.fixture(scope="class")
def loaded(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    with django_db_blocker.unblock(), transaction.atomic():
        demo.load()
        yield
        transaction.set_rollback(True)


@pytest.fixture
def clinic(loaded: None, db: Any) -> Clinic:
    return Clinic.objects.get(name=demo.CLINIC_NAME)


def client_for(username: str) -> Client:
    client = Client()
    client.force_login(User.objects.get(username=username))
    return client


@pytest.mark.usefixtures("clinic")
class WordsTests:
    def read(self, client: Client, path: str) -> list[str]:
        response = client.get(path)
        assert response.status_code == 200, path
        return [f"{path}: {p}" for p in problems(visible_text(response.content.decode()))]

    def test_the_main_pages_name_nothing_internal(self, clinic: Clinic) -> None:
        manager, practitioner = client_for("manager"), client_for("practitioner")
        found: list[str] = []
        for client in (manager, practitioner, client_for("frontdesk")):
            found += self.read(client, "/today/")
        for patient in Patient.objects.filter(clinic=clinic):
            found += self.read(practitioner, f"/patients/{patient.pk}/")
        for session in Session.objects.filter(course__clinic=clinic).order_by("id")[:40]:
            found += self.read(practitioner, f"/sessions/{session.pk}/")
        for course in Course.objects.filter(clinic=clinic).order_by("id")[:10]:
            found += self.read(
                practitioner, f"/patients/{course.patient_id}/courses/{course.pk}/consent/"
            )
            found += self.read(practitioner, f"/courses/{course.pk}/sessions/new/")
        for path in (
            "/calendar/",
            "/calendar/?view=week",
            "/safety/alerts/",
            "/safety/adverse-events/",
            "/manage/formulary/",
            "/manage/stock/",
            "/manage/staff/",
            "/manage/protocols/",
            "/manage/protocols/cellulite/",
            "/manage/protocols/cellulite/?version=1",
            "/manage/consent/",
            "/analytics/",
        ):
            found += self.read(manager, path)
        for alert in SafetyAlert.objects.filter(clinic=clinic):
            found += self.read(manager, f"/safety/alerts/{alert.pk}/")
        assert found == [], "\n".join(found)

    def test_a_protocol_noted_by_an_older_release_reads_in_words(self, clinic: Clinic) -> None:
        ClinicProtocol.objects.filter(clinic=clinic, version=1).update(
            change_note="Installed from cellulite.toml (file version 1)"
        )
        manager = client_for("manager")
        found: list[str] = []
        for path in ("/manage/protocols/", "/manage/protocols/cellulite/?version=1"):
            found += self.read(manager, path)
        assert found == [], "\n".join(found)

    def test_the_aftercare_email_names_nothing_internal(self, clinic: Clinic) -> None:
        for session in Session.objects.filter(course__clinic=clinic).order_by("id")[:20]:
            assert problems(aftercare_text(session)) == []

    def test_the_patterns_catch_what_the_review_found(self) -> None:
        for broken in (
            "Only 0 days after the session",
            "(possible contamination).).",
            "ALLERGYS",
            "Source: 002_fa4d881737f3a5fe.txt",
            "Maria works none on Wed 9 Dec",
            "SPEC: 24 h",
            "seed 004 says",
            "sessions 2 3",
            "nurnberger_muller 2",
            "002 alone says",
            "Installed from cellulite.toml (file version 1)",
            "Read from screening.json",
        ):
            assert problems(broken), broken
        assert problems("Lot L-100 expires on 1 Jan 2027; 10–15 sessions (3 articles).") == []


class SourceWordsTests:
    def test_an_article_is_named_by_its_title_and_alike_titles_apart(self) -> None:
        from mesoclinic.protocols.vocab import describe_source, name_sources

        assert describe_source("002_fa4d881737f3a5fe.txt") == "Reducing Cellulite with Mesotherapy"
        pasadena = describe_source("001_d38809c806382382.txt")
        aftercare = describe_source("004_775ed0aecb2fac00.txt")
        assert pasadena != aftercare and "Pasadena" in pasadena
        assert (
            describe_source("SPEC: adverse events") == "mesoclinic's safety rules: adverse events"
        )
        assert name_sources("002: most people need 15 to 20 treatments.") == (
            "“Reducing Cellulite with Mesotherapy”: most people need 15 to 20 treatments."
        )
        # A number that is not an article stays as it is.
        assert name_sources("0.002 mL, 002 %, 1002 units") == "0.002 mL, 002 %, 1002 units"
