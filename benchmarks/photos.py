"""Peak memory of storing clinical photos through the API, one upload and four at once.

Memory is a property of the whole process, so each case runs in a fresh Python process:

1. The parent makes the pictures once (making a 49-megapixel picture costs memory itself) and
   writes them to a temporary folder.
2. Each child migrates a throwaway SQLite database, creates a clinic, a practitioner, a course
   and the patient's clinical photo consent, and uploads a small photo through the API
   (POST /api/v1/courses/{id}/photos), so that Django, Pillow and every codec are loaded.
3. The child then resets the kernel's high-water mark of its resident memory (writing 5 to
   /proc/self/clear_refs), notes its resident memory as the baseline, and uploads the case's
   picture once, or four times at once from four threads, each with its own client.
4. The figure is the increment: the high-water mark (VmHWM) after the uploads, less the
   baseline. The parent prints one line per case: the answers' statuses and the increment.

`python -m benchmarks photos` runs it. Record the figures in docs/benchmarks.md.
"""

from __future__ import annotations

import io
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# Each case: a name, the picture's file, how many uploads at once, and extra environment.
PICTURES = {
    "small": ("JPEG", 800, 600),
    "7000x7000": ("JPEG", 7000, 7000),
    "6000x6000": ("JPEG", 6000, 6000),
    "4000x3000": ("JPEG", 4000, 3000),
    "6000x6000-progressive": ("JPEG", 6000, 6000),
    "6000x6000-png": ("PNG", 6000, 6000),
}
CASES: list[tuple[str, str, int, dict[str, str]]] = [
    ("12 MP phone JPEG 4000 × 3000", "4000x3000", 1, {}),
    ("the 7000 × 7000 JPEG, default limits", "7000x7000", 1, {}),
    ("the 7000 × 7000 JPEG, default limits, 4 at once", "7000x7000", 4, {}),
    ("the 7000 × 7000 JPEG, PHOTO_MAX_PIXELS=50000000", "7000x7000", 1,
     {"PHOTO_MAX_PIXELS": "50000000"}),
    ("the 7000 × 7000 JPEG, PHOTO_MAX_PIXELS=50000000, 4 at once", "7000x7000", 4,
     {"PHOTO_MAX_PIXELS": "50000000"}),
    ("36 MP JPEG 6000 × 6000", "6000x6000", 1, {}),
    ("36 MP JPEG 6000 × 6000, 4 at once", "6000x6000", 4, {}),
    ("36 MP progressive JPEG 6000 × 6000", "6000x6000-progressive", 1, {}),
    ("36 MP PNG 6000 × 6000", "6000x6000-png", 1, {}),
    ("36 MP PNG 6000 × 6000, 4 at once", "6000x6000-png", 4, {}),
]  # fmt: skip


CHILD = "import json, benchmarks.photos as b; print(json.dumps(b.child({path!r}, {at_once})))"


def make_picture(fmt: str, width: int, height: int, progressive: bool = False) -> bytes:
    """A smooth gradient with a little noise: it compresses as a photo of skin does (the
    7000 × 7000 JPEG is about a megabyte, like the one that was reported). The PNG has no
    noise, or it would be over the 15 MB limit and refused before it was decoded."""
    from PIL import Image

    gradient = Image.linear_gradient("L").resize((width, height))
    mirrored = gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    out = io.BytesIO()
    if fmt == "PNG":
        flipped = gradient.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        Image.merge("RGB", (gradient, mirrored, flipped)).save(out, "PNG")
        return out.getvalue()
    noise = Image.effect_noise((width, height), 2)
    Image.merge("RGB", (gradient, noise, mirrored)).save(
        out,
        "JPEG",
        quality=80,
        progressive=progressive,
        # A phone writes 4:2:0; the progressive case takes the costliest, 4:4:4.
        subsampling=0 if progressive else 2,
    )
    return out.getvalue()


def _kib(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    found = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) if found else 0


def child(picture: str, at_once: int) -> dict[str, Any]:
    """Steps 2 to 4, in this (fresh) process; `picture` is a file written by the parent."""
    import datetime as dt
    import threading

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mesoclinic.settings")
    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from mesoclinic.accounts.models import Clinic, Membership, PractitionerLicence, User
    from mesoclinic.api.models import ApiToken
    from mesoclinic.courses import actions
    from mesoclinic.outcomes import photo_actions
    from mesoclinic.patients.actions import do_setup_clinic
    from mesoclinic.patients.models import Patient
    from mesoclinic.protocols.models import ClinicProtocol

    call_command("migrate", interactive=False, verbosity=0)
    clinic = Clinic.objects.create(name="Bench", city="Lisbon", timezone="Europe/Lisbon")
    do_setup_clinic(clinic)
    user = User.objects.create_user("bench", password="x")
    membership = Membership.objects.create(
        user=user, clinic=clinic, role=Membership.Role.PRACTITIONER
    )
    PractitionerLicence.objects.create(
        user=user,
        clinic=clinic,
        kind=PractitionerLicence.Kind.PHYSICIAN,
        number="MD-1",
        jurisdiction="Lisbon",
        expires_on=dt.date.today() + dt.timedelta(days=365),
    )
    patient = Patient.objects.create(
        clinic=clinic, first_name="Ana", last_name="Lopez", date_of_birth=dt.date(1990, 5, 17)
    )
    course = actions.do_plan_course(
        patient,
        ClinicProtocol.current(clinic, "cellulite"),
        indication="cellulite",
        areas=["thighs", "buttocks"],
        cadence_days=7,
        planned_sessions=15,
        user=user,
    )
    photo_actions.do_record_photo_consent(
        patient,
        purpose="clinical",
        granted=True,
        decided_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1),
        user=user,
    )
    views = ["front", "back", "left", "right"]

    def upload(data: bytes, view: str) -> int:
        _, raw = ApiToken.issue(user, membership)
        response = Client(HTTP_HOST="localhost").post(
            f"/api/v1/courses/{course.pk}/photos",
            {"image": io.BytesIO(data), "area": "thighs", "view": view},
            headers={"Authorization": f"Bearer {raw}"},
        )
        return response.status_code

    small = Path(picture).with_name("small.jpg").read_bytes()
    warm = upload(small, "front")
    if warm != 201:
        raise AssertionError(f"The warm-up upload answered {warm}.")
    data = Path(picture).read_bytes()
    import gc

    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    baseline = _kib("VmRSS")
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda v=view: statuses.append(upload(data, v)))
        for view in views[:at_once]
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    peak = _kib("VmHWM")
    return {
        "warm_up": warm,
        "statuses": sorted(statuses),
        "baseline_mb": baseline / 1024,
        "peak_mb": peak / 1024,
        "increment_mb": (peak - baseline) / 1024,
        "file_kb": len(data) / 1024,
    }


def run() -> list[dict[str, Any]]:
    """Steps 1 and 4: make the pictures, run each case in a fresh process, print the figures."""
    folder = Path(tempfile.mkdtemp(prefix="mesoclinic-bench-photos-"))
    for name, (fmt, width, height) in PICTURES.items():
        (folder / f"{name}.{fmt.lower().replace('jpeg', 'jpg')}").write_bytes(
            make_picture(fmt, width, height, progressive=name.endswith("progressive"))
        )
    print(f"Photo upload peak memory ({platform.node()}, {os.cpu_count()} CPUs)")
    print(f"{'case':<62} {'file':>9} {'answers':>20} {'baseline':>9} {'increment':>10}")
    results = []
    for label, picture, at_once, env in CASES:
        fmt = PICTURES[picture][0]
        path = folder / f"{picture}.{fmt.lower().replace('jpeg', 'jpg')}"
        data_dir = tempfile.mkdtemp(prefix="mesoclinic-bench-photos-db-")
        completed = subprocess.run(
            [sys.executable, "-c", CHILD.format(path=str(path), at_once=at_once)],
            env={**os.environ, "DATA_DIR": data_dir, **env},
            capture_output=True,
            text=True,
            check=True,
        )  # fmt: skip
        figures = json.loads(completed.stdout.strip().splitlines()[-1])
        figures["case"] = label
        results.append(figures)
        print(
            f"{label:<62} {figures['file_kb']:>6.0f} KB {str(figures['statuses']):>20} "
            f"{figures['baseline_mb']:>6.0f} MB {figures['increment_mb']:>7.0f} MB"
        )
    return results
