"""A clinic's first month from an empty database, in Debian's Chromium, with nothing done
through the admin or the shell.

The first manager is made as `mesoclinic init` makes them (its command, with the flags a script
would give). Everything after is done in the browser: the manager is led to the setup guide,
gives the clinic's details, its week and a holiday, a room, the visit lengths, invites a
practitioner (who sets their password from the emailed link) and a front desk, gives the
practitioner a licence and weekly hours, and adds a product with its ingredients and a lot. The
front desk registers a patient and books a consultation; the practitioner screens, plans,
takes consent, gives and reads the allergy test, and charts session 1; a week later Today shows
the patient due. Each setup page is saved to docs/screenshots/setup-*.png.

The live server runs in a thread of this process, so time-machine moves its clock too.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from playwright.sync_api import Page, expect

from mesoclinic.accounts.models import Clinic, PractitionerLicence, User
from mesoclinic.courses.models import Course, Session
from mesoclinic.patients.models import Patient
from mesoclinic.scheduling.models import Appointment, Holiday, OpeningHours, Room, WorkingHours
from tests.browser.conftest import assert_accessible, login, shot

pytestmark = pytest.mark.browser

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
# A Monday morning, before the clinic opens.
START = dt.datetime(2027, 1, 4, 8, 30, tzinfo=NEW_YORK)
PASSWORD = "first month passphrase 2027"
LIPODISSOLVE = "Phosphatidylcholine / deoxycholate (Lipodissolve)"


def step(page: Page, name: str) -> None:
    shot(page, name)
    assert_accessible(page, name)


def phone(page: Page, name: str) -> None:
    """The page as it stands, on a phone 390 px wide: nothing may need a sideways scroll."""
    page.set_viewport_size({"width": 390, "height": 844})
    width = page.evaluate("document.documentElement.scrollWidth")
    shot(page, name)
    page.set_viewport_size({"width": 1280, "height": 900})
    assert width <= 390, f"{name} is {width} px wide on a 390 px phone"


def nav(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()


def first_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `mesoclinic init` does after migrating, with a script's flags."""
    monkeypatch.setenv("MESOCLINIC_MANAGER_PASSWORD", PASSWORD)
    call_command(
        "init",
        "--clinic-name=Harbour Mesotherapy",
        "--timezone=America/New_York",
        "--currency=USD",
        "--date-format=12/31/2026",
        "--time-format=12h",
        "--locale=en-US",
        "--username=hana",
        "--first-name=Hana",
        "--last-name=Berg",
        "--email=hana@example.com",
        "--no-input",
        stdout=StringIO(),
    )


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()


def invite(page: Page, username: str, first: str, last: str, role: str) -> None:
    nav(page, "Staff")
    page.get_by_role("link", name="Invite staff").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("First name").fill(first)
    page.get_by_label("Last name").fill(last)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Role").select_option(label=role)
    page.get_by_role("button", name=re.compile("Invite|Send")).click()
    expect(page.get_by_text(f"{first} {last} was invited by email.")).to_be_visible()


def accept_invitation(page: Page, email: str) -> None:
    """Follow the emailed link and choose a password, as the invitee does."""
    message = next(m for m in reversed(mail.outbox) if email in m.to)
    link = re.search(r"https?://\S+", message.body)
    assert link is not None
    page.goto(link.group(0))
    page.locator("#id_new_password1").fill(PASSWORD)
    page.locator("#id_new_password2").fill(PASSWORD)
    page.get_by_role("button", name="Set the password").click()
    expect(page.get_by_text(re.compile("password", re.I)).first).to_be_visible()


def test_a_new_clinic_runs_its_first_week(
    page: Page, live_server: Any, transactional_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not Clinic.objects.exists()
    with time_machine.travel(START, tick=True) as clock:
        first_run(monkeypatch)
        clinic = Clinic.objects.get()

        # 1. The manager's first sign-in leads to the setup guide.
        login(page, live_server, "hana", PASSWORD)
        expect(page.get_by_role("heading", level=1)).to_contain_text("Setup guide")
        expect(page.get_by_text("6 steps to go")).to_be_visible()
        step(page, "setup-guide")

        # 2. The clinic's details.
        page.get_by_role("link", name="Clinic details").click()
        page.get_by_label("Address", exact=True).fill("4 Harbour Road, Portland ME 04101")
        page.get_by_label("The clinic's phone number").fill("+1 207 555 0110")
        step(page, "setup-clinic")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_text("Clinic details saved.")).to_be_visible()

        # 3. Opening hours: a mistake first, refused beside the day; then the week and a holiday.
        page.get_by_role("link", name="Setup guide").click()
        page.get_by_role("link", name="Opening hours and holidays").click()
        page.get_by_label("Monday").fill("6 pm - 9 am")
        page.get_by_role("button", name="Save opening hours").click()
        expect(page.locator(".field-error", has=page.get_by_label("Monday"))).to_contain_text(
            "the end is not after the start"
        )
        for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"):
            page.get_by_label(day).fill("8 am - 6 pm")
        page.get_by_label("Saturday").fill("9 am - 1 pm")
        page.get_by_role("button", name="Save opening hours").click()
        expect(page.get_by_text("Opening hours saved.")).to_be_visible()
        page.get_by_label("Date").fill("05/31/2027")
        page.get_by_label("Name of the holiday").fill("Memorial Day")
        page.get_by_role("button", name="Add the holiday").click()
        expect(page.get_by_role("cell", name="05/31/2027", exact=True)).to_be_visible()
        step(page, "setup-hours")
        assert OpeningHours.objects.filter(clinic=clinic).count() == 6
        assert Holiday.objects.get(clinic=clinic).date == dt.date(2027, 5, 31)

        # 4. A room.
        page.get_by_role("link", name="Setup guide").click()
        page.get_by_role("link", name="Rooms").click()
        page.get_by_label("Room name").fill("Treatment room")
        page.get_by_role("button", name="Add the room").click()
        expect(page.get_by_text("Treatment room was added.")).to_be_visible()
        step(page, "setup-rooms")
        phone(page, "setup-rooms-phone")

        # 5. Visit lengths: a consultation takes 45 minutes here.
        page.get_by_role("link", name="Setup guide").click()
        page.get_by_role("link", name="Visit types").click()
        page.get_by_label("Consultation").select_option("45")
        page.get_by_role("button", name="Save the lengths").click()
        expect(page.get_by_text("Visit lengths saved.")).to_be_visible()
        step(page, "setup-visit-types")

        # 6. A practitioner and a front desk, invited by email.
        invite(page, "pia", "Pia", "Lund", "Practitioner")
        invite(page, "fred", "Fred", "Moss", "Front desk")
        nav(page, "Staff")
        # Licences are kept on each member's page, with their history.
        page.get_by_role("row", name=re.compile("Pia Lund")).get_by_role(
            "link", name="Pia Lund", exact=True
        ).click()
        page.get_by_role("link", name="Add a licence").click()
        page.get_by_label("Kind").select_option(label="Registered nurse")
        page.get_by_label("Number").fill("RN-20417")
        page.get_by_label("Jurisdiction").fill("Maine")
        page.get_by_label("Expires on").fill("2028-12-31")
        page.get_by_role("button", name=re.compile("Add|Save")).click()
        expect(page.get_by_text("The licence of")).to_be_visible()
        assert PractitionerLicence.objects.get(user__username="pia").number == "RN-20417"

        nav(page, "Setup")
        page.get_by_role("link", name="Hours of Pia Lund").click()
        for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"):
            page.get_by_label(day).fill("9 am - 5 pm")
        page.get_by_label("Saturday").fill("9 am - 3 pm")
        page.get_by_role("button", name="Save weekly hours").click()
        # Saturday's hours go past the clinic's 1 pm closing: saved, and said.
        expect(page.get_by_text(re.compile("On Saturday these hours go beyond"))).to_be_visible()
        page.get_by_label("Saturday").fill("")
        page.get_by_role("button", name="Save weekly hours").click()
        expect(page.get_by_text("The weekly hours of Pia Lund were saved.")).to_be_visible()
        page.get_by_label("Date").fill("02/15/2027")
        page.get_by_label("What").select_option(label="Time off")
        page.get_by_role("button", name="Add", exact=True).click()
        expect(page.get_by_role("cell", name="02/15/2027", exact=True)).to_be_visible()
        step(page, "setup-practitioner-hours")
        phone(page, "setup-practitioner-hours-phone")
        assert WorkingHours.objects.filter(user__username="pia").count() == 5

        # 7. The formulary: a product with its ingredients, and a lot.
        nav(page, "Formulary")
        page.get_by_role("link", name="Add a product").click()
        page.get_by_label("Name").fill("PC/DC 5%")
        page.get_by_label("Supplier").fill("Coastal Compounding")
        page.get_by_label("Vial").select_option(label="Single-dose vial")
        first = page.locator("fieldset").first
        first.get_by_label("Ingredient").select_option(label=LIPODISSOLVE)
        first.get_by_label("Concentration").fill("50")
        page.get_by_role("button", name="Add the product").click()
        expect(page.get_by_text("PC/DC 5% was added to the formulary.")).to_be_visible()
        page.get_by_role("link", name=re.compile("Receive a lot|Add a lot")).first.click()
        page.get_by_label("Lot number").fill("PC-2701")
        page.get_by_label("Expires on").fill("2028-06-30")
        page.get_by_label("Received on").fill("2027-01-04")
        page.get_by_role("button", name=re.compile("Receive|Add|Save")).click()
        expect(page.get_by_text("Lot PC-2701 of PC/DC 5% was received.")).to_be_visible()

        # 8. Every step is done; the manager says so, and Today has no banner.
        nav(page, "Setup")
        expect(page.get_by_text("everything is done")).to_be_visible()
        step(page, "setup-done")
        phone(page, "setup-done-phone")
        page.get_by_role("button", name="The clinic is set up").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Today")
        expect(page.get_by_text("Open the setup guide")).to_have_count(0)
        sign_out(page)

        # 9. The front desk sets their password, registers a patient and books a consultation.
        accept_invitation(page, "fred@example.com")
        login(page, live_server, "fred", PASSWORD)
        nav(page, "Patients")
        page.get_by_role("link", name="Register a patient").click()
        page.get_by_label("First name").fill("Lena")
        page.get_by_label("Last name").fill("Ortiz")
        page.get_by_label("Date of birth").fill("1986-09-14")
        page.get_by_label("Phone", exact=True).fill("+1 207 555 0177")
        page.get_by_role("button", name="Register").click()
        expect(page.get_by_role("heading", name=re.compile("Lena Ortiz"))).to_be_visible()
        patient = Patient.objects.get(last_name="Ortiz")

        nav(page, "Calendar")
        page.get_by_role("link", name="Book the next free slot").click()
        page.get_by_label("Find a patient").fill("Ortiz")
        page.get_by_label("Find a patient").press("Enter")
        page.locator("#patient-results").get_by_role("link", name=re.compile("Ortiz, Lena")).click()
        page.get_by_role("combobox", name=re.compile("^Visit")).select_option("consultation")
        page.get_by_role("combobox", name=re.compile("^Practitioner")).select_option(
            label="Pia Lund"
        )
        page.get_by_role("button", name="Find the next free slot").click()
        page.get_by_role("button", name="Book this slot").click()
        expect(page.get_by_text(re.compile("^Booked: Consultation for Lena Ortiz"))).to_be_visible()
        shot(page, "first-month-consultation-booked")
        visit = Appointment.objects.get(patient=patient)
        assert (visit.kind, visit.course_id) == ("consultation", None)
        assert visit.duration == dt.timedelta(minutes=45)
        assert visit.room == Room.objects.get(clinic=clinic)
        sign_out(page)

        # 10. The practitioner: screening, a course, consent, the allergy test.
        accept_invitation(page, "pia@example.com")
        login(page, live_server, "pia", PASSWORD)
        chart = f"{live_server.url}/patients/{patient.pk}/"
        page.goto(chart)
        page.get_by_role("link", name="Fill in the screening").click()
        # Each yes/no question; the allergy question's "to what" picker is asked only on a yes.
        yes_no = page.locator("fieldset").filter(has=page.get_by_label("No", exact=True))
        for group in yes_no.all():
            group.get_by_label("No", exact=True).check()
        page.get_by_role("button", name="Record the screening").click()
        expect(page.get_by_text("Screening recorded: Eligible")).to_be_visible()

        page.get_by_role("link", name="Plan a course").click()
        page.get_by_label("Protocol").select_option("cellulite")
        page.get_by_label("Thighs", exact=True).check()
        page.get_by_role("button", name="Plan the course").click()
        course = Course.objects.get(patient=patient)
        card = page.locator(f"#course-{course.pk}")

        # Consent is the course's next action once it is planned and the patient screened.
        card.get_by_role("link", name=re.compile(r"^Take consent")).first.click()
        page.get_by_label("Patient's full name, typed").fill("Lena Ortiz")
        canvas = page.locator(".signature canvas")
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + 40, box["y"] + 60)
        page.mouse.down()
        for dx, dy in ((90, 40), (160, 90), (230, 30), (300, 80)):
            page.mouse.move(box["x"] + dx, box["y"] + dy, steps=4)
        page.mouse.up()
        page.get_by_role("button", name="Sign", exact=True).click()
        expect(page.get_by_text("Consent signed.")).to_be_visible()

        card = page.locator(f"#course-{course.pk}")
        card.get_by_label("First injection: lot number").fill("PC-2701")
        card.get_by_label("Second injection: lot number").fill("PC-2701")
        card.get_by_role("button", name="Record the test injections").click()
        expect(page.get_by_text("Allergy test recorded.")).to_be_visible()

        # The baseline is recorded from the chart's progress section.
        page.locator(f"#progress-{course.pk}").get_by_role(
            "link", name="Record the baseline"
        ).click()
        for key, value in (("number", 3), ("depth", 2), ("morphology", 2), ("laxity", 1)):
            page.locator(f"#id_hexsel_{key}").fill(str(value))
        page.locator("#id_hexsel_nurnberger_muller").fill("2")
        page.get_by_role("button", name="Record the measurements").click()
        expect(page.get_by_text("Recorded 1 measurement(s)")).to_be_visible()

        # 11. A day later: the reading, then session 1.
        clock.shift(dt.timedelta(hours=24, minutes=5))
        login(page, live_server, "pia", PASSWORD)
        page.goto(chart)
        card = page.locator(f"#course-{course.pk}")
        card.get_by_label("No reaction").check()
        card.get_by_role("button", name="Record the reading").click()
        expect(page.get_by_text("Reading recorded: No reaction.")).to_be_visible()
        # Nothing blocks now, so the course's next action is to chart session 1.
        page.locator(f"#course-{course.pk}").get_by_role("link", name="Chart session 1").click()
        page.wait_for_url(f"**/courses/{course.pk}/sessions/new/", wait_until="load")
        page.locator('svg[data-body-map] [data-area="thighs"]').first.click()
        page.get_by_label("Lot number for Thighs").fill("PC-2701")
        page.get_by_label("Volume for Thighs").fill("4")
        page.get_by_label("Technique for Thighs").select_option("nappage")
        page.get_by_role("button", name="Chart the session").click()
        expect(page.get_by_role("heading", name=re.compile("Session 1"))).to_be_visible()
        assert Session.objects.filter(course=course).count() == 1

        # 12. A week on, Today shows Lena due for her next session.
        clock.shift(dt.timedelta(days=7))
        login(page, live_server, "pia", PASSWORD)
        due = page.locator(
            "section", has=page.get_by_role("heading", name=re.compile("Due or overdue"))
        )
        expect(due).to_contain_text("Ortiz")
        step(page, "first-month-today-due")
    assert User.objects.filter(is_superuser=True).count() == 0
