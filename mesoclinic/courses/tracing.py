"""Tracing a lot: every patient who received it, for a recall or an outbreak. The API and
the manager's pages both ask this one function, so they always name the same patients."""

from __future__ import annotations

from typing import Any

from mesoclinic.courses.models import AllergyTestInjection, SessionInjection
from mesoclinic.formulary.models import Lot
from mesoclinic.patients.models import Patient


def lot_exposures(lot: Lot) -> list[dict[str, Any]]:
    """Every patient who received the lot, in a session or an allergy test, sorted by name,
    with each patient's exposures in time order.

    Each row holds the patient's id, names, phone and email, and `exposures`: one entry per
    injection, with `kind` ("session" or "allergy_test"), `at`, and where it went (`area`
    and `volume_ml` for a session, `site` for an allergy test), and `vial`, the number of
    the vial it was drawn from (None for an injection charted before vials were kept): after
    an outbreak traced to one opened vial, its patients are the ones to call first."""
    rows: dict[int, dict[str, Any]] = {}
    injections = SessionInjection.objects.filter(lot=lot).select_related(
        "session__course__patient", "vial"
    )
    for inj in injections.order_by("session__performed_at", "pk"):
        p = inj.session.course.patient
        row = rows.setdefault(p.pk, _exposed(p))
        row["exposures"].append(
            {
                "kind": "session",
                "session": inj.session_id,
                "at": inj.session.performed_at,
                "area": inj.area,
                "volume_ml": str(inj.volume_ml),
                "vial": inj.vial.number if inj.vial else None,
            }
        )
    tests = AllergyTestInjection.objects.filter(lot=lot).select_related(
        "test__course__patient", "vial"
    )
    for t in tests.order_by("given_at", "pk"):
        p = t.test.course.patient
        row = rows.setdefault(p.pk, _exposed(p))
        row["exposures"].append(
            {
                "kind": "allergy_test",
                "allergy_test": t.test_id,
                "at": t.given_at,
                "site": t.site,
                "vial": t.vial.number if t.vial else None,
            }
        )
    for row in rows.values():
        row["exposures"].sort(key=lambda e: e["at"])
    return sorted(rows.values(), key=lambda r: (r["last_name"], r["first_name"], r["id"]))


def _exposed(p: Patient) -> dict[str, Any]:
    return {
        "id": p.pk,
        "first_name": p.first_name,
        "last_name": p.last_name,
        "phone": p.phone,
        "email": p.email,
        "exposures": [],
    }
