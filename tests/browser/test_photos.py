"""Clinical photos in Debian's Chromium, held as a tablet: the practitioner records the
patient's consent to clinical photos, takes the thighs' front view through the file input at
the baseline and again weeks later, and compares the two side by side and as an overlay whose
slider fades the latest photo over the baseline. Screenshots go to docs/screenshots/.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect

from mesoclinic.outcomes import photos
from mesoclinic.outcomes.models import Photo, PhotoConsent
from mesoclinic.patients.models import Patient
from tests.browser.conftest import assert_accessible, login, shot
from tests.conftest import World
from tests.test_photos import GPS, GPS_IFD, cellulite_course

pytestmark = pytest.mark.browser


def synthetic_photo(path: Path, dots: int) -> Path:
    """A stand-in for a photo of an area: a plain background with `dots` grey marks, and GPS
    EXIF, as a tablet's camera would write. Only a picture to tell two apart, not a body."""
    img = Image.new("RGB", (960, 1280), (226, 196, 178))
    draw = ImageDraw.Draw(img)
    for i in range(dots):
        x, y = 120 + (i * 197) % 720, 160 + (i * 331) % 960
        draw.ellipse((x, y, x + 60, y + 40), fill=(170, 140, 128))
    exif = Image.Exif()
    exif[GPS_IFD] = GPS
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90, exif=exif)
    path.write_bytes(out.getvalue())
    return path


def local(moment: dt.datetime, world: World) -> str:
    return timezone.localtime(moment, world.clinic.tz).strftime("%Y-%m-%dT%H:%M")


def test_photos_are_taken_and_compared(
    tablet_page: Page, live_server: Any, world: World, settings: Any, tmp_path: Path
) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "clinical_photos": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "store", "base_url": None},
        },
    }
    page = tablet_page
    patient = Patient.objects.create(
        clinic=world.clinic,
        first_name="Ana",
        last_name="Lopez",
        date_of_birth=dt.date(1990, 5, 17),
        email="ana@example.com",
    )
    course = cellulite_course(world, patient)
    login(page, live_server, world.practitioner.username)
    page.goto(f"{live_server.url}/patients/{patient.pk}/")

    # No consent yet: the chart says so, and the photos page would not offer the camera.
    card = page.locator(f"#photos-{course.pk}")
    expect(card.get_by_text("not asked yet")).to_be_visible()
    card.get_by_role("link", name="Record photo consent").click()
    clinical = page.locator("section", has=page.get_by_role("heading", name=re.compile("Clinical")))
    clinical.get_by_label("Granted").check()
    clinical.get_by_label("Decided at").fill(local(timezone.now() - dt.timedelta(days=50), world))
    shot(page, "photos-consent")
    assert_accessible(page, "photos-consent")
    clinical.get_by_role("button", name=re.compile("Record the clinical")).click()
    consent = PhotoConsent.objects.get()
    assert (consent.purpose, consent.granted) == ("clinical", True)
    assert not PhotoConsent.objects.filter(purpose="marketing").exists()

    # The baseline, six weeks ago, then today's photo of the same view.
    card = page.locator(f"#photos-{course.pk}")
    card.get_by_role("link", name="Take or compare photos").click()
    thighs = page.locator("#area-thighs")
    front = thighs.get_by_label("Front")
    assert front.get_attribute("capture") == "environment"
    assert front.get_attribute("accept") == photos.ACCEPT
    front.set_input_files(synthetic_photo(tmp_path / "IMG_0001.JPG", dots=14))
    thighs.get_by_label("Taken at").fill(local(timezone.now() - dt.timedelta(days=42), world))
    shot(page, "photos-take")
    assert_accessible(page, "photos-take")
    thighs.get_by_role("button", name="Store the thighs photos").click()
    expect(page.get_by_text("Thighs: front photo stored.")).to_be_visible()
    thighs = page.locator("#area-thighs")
    thighs.get_by_label("Front").set_input_files(synthetic_photo(tmp_path / "IMG_0042.JPG", 6))
    thighs.get_by_role("button", name="Store the thighs photos").click()
    expect(page.get_by_text("Thighs: front photo stored.")).to_be_visible()
    assert Photo.objects.filter(area="thighs", view="front").count() == 2
    for photo in Photo.objects.all():
        stored = (tmp_path / "store" / photo.image.name).read_bytes()
        assert photos.metadata_of(stored)["exif"] == {}

    # Side by side, and the overlay with its slider (the page's JavaScript shows it).
    page.get_by_role("link", name="compare baseline and latest").click()
    side = page.locator("section", has=page.get_by_role("heading", name="Side by side"))
    expect(side.get_by_role("img", name=re.compile("^Baseline"))).to_be_visible()
    expect(side.get_by_role("img", name=re.compile("^Latest"))).to_be_visible()
    for img in side.get_by_role("img").all():
        assert img.evaluate("i => i.complete && i.naturalWidth") == 960
    overlay = page.locator("#overlay")
    expect(overlay).to_be_visible()
    slider = overlay.get_by_label("Latest photo's opacity")
    slider.fill("80")
    latest = overlay.locator("img.over")
    expect(latest).to_have_css("opacity", "0.8")
    shot(page, "photos-compare")
    assert_accessible(page, "photos-compare")
    slider.fill("20")
    expect(latest).to_have_css("opacity", "0.2")
