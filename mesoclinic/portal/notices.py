"""Recall notices in the portal: the notices a clinic sent the patient after a lot recall
(notify/actions.do_notify_exposed), listed for the signed-in patient, each read on its own
page and marked read through notify's own action when the patient presses the button (as on
the notice's signed-link page: a page fetched is not a notice read)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_safe

from mesoclinic.access import OWN, access_notice, access_patient, notices_for
from mesoclinic.notify import actions
from mesoclinic.portal.views import patient_caller, patient_page


@patient_page
@require_safe
def notices(request: HttpRequest) -> HttpResponse:
    caller = patient_caller(request)
    # Reading the page is one audited view of the patient's own records.
    patient = access_patient(caller, caller.patient.pk, OWN, view=True)  # type: ignore[union-attr]
    found = list(notices_for(caller, OWN).select_related("clinic").order_by("-created_at"))
    return render(
        request,
        "portal/notices.html",
        {"page": "notices", "patient": patient, "clinic": patient.clinic, "notices": found},
    )


@patient_page
@require_http_methods(["GET", "POST"])
def notice(request: HttpRequest, notice_id: int) -> HttpResponse:
    caller = patient_caller(request)
    found = access_notice(caller, notice_id, OWN, view=request.method == "GET")
    if request.method == "POST":
        actions.do_mark_read(found)
        return redirect("portal:notice", found.pk)
    return render(
        request,
        "portal/notice.html",
        {"page": "notices", "patient": found.patient, "clinic": found.clinic, "notice": found},
    )
