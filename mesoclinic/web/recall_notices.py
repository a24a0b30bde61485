"""After a lot recall: the manager sends a notice to every patient who received the lot, and
sees for each patient what was sent by email and by text, what the provider reported, and when
the patient read it. The sending is the worker's (notify/actions.py); this page only asks."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from mesoclinic.access import access_lot
from mesoclinic.formulary.models import Lot
from mesoclinic.notify import actions
from mesoclinic.notify.models import RecallNotice, TextMessage
from mesoclinic.web.context import MANAGER, caller


class NoticeForm(forms.Form):
    text = forms.CharField(
        label="The notice the patients will read",
        max_length=4000,
        error_messages={"required": "Write the notice the patients will read."},
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="Shown on the page the email and text message link to. The email and the "
        "text say only that the clinic has a message for them.",
    )

    def clean_text(self) -> str:
        text = str(self.cleaned_data["text"]).strip()
        if not text:
            raise forms.ValidationError("Write the notice the patients will read.")
        return text


def default_text(lot: Lot) -> str:
    clinic = lot.product.clinic
    phone = f" on {clinic.phone}" if clinic.phone else ""
    return (
        f"A batch of a product used in your treatment at {clinic.name} ({lot.product.name}, "
        f"lot {lot.lot_number}) has been recalled. Please call us{phone} so that we can "
        "talk it through with you and answer your questions."
    )


def notices_context(lot: Lot, form: NoticeForm | None = None) -> dict[str, Any]:
    """What the lot page shows about notices: one row per notified patient, and the form while
    some exposed patient has none."""
    notices = list(
        RecallNotice.objects.filter(lot=lot)
        .select_related("patient")
        .prefetch_related("texts")
        .order_by("patient__last_name", "patient__first_name", "pk")
    )
    for n in notices:
        n.text_message = next(  # type: ignore[attr-defined]
            (t for t in n.texts.all() if t.kind == TextMessage.Kind.NOTICE), None
        )
    return {
        "notices": notices,
        "notice_form": form or NoticeForm(initial={"text": default_text(lot)}),
    }


@login_required
@require_POST
def notify_exposed(request: HttpRequest, lot_id: int) -> HttpResponse:
    lot = access_lot(caller(request), lot_id, MANAGER)
    form = NoticeForm(request.POST)
    if form.is_valid():
        try:
            made = actions.do_notify_exposed(lot, form.cleaned_data["text"], user=request.user)
        except ValidationError as exc:
            if hasattr(exc, "error_dict"):
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                messages.error(request, " ".join(exc.messages))
                return redirect("web:manage_lot", lot_id=lot.pk)
        else:
            if made:
                n = len(made)
                messages.success(
                    request,
                    f"A notice to {n} patient{'s' if n != 1 else ''} is on its way.",
                )
            else:
                messages.info(request, "Every patient who received this lot has a notice already.")
            return redirect("web:manage_lot", lot_id=lot.pk)
    return render(
        request,
        "web/manage/lot_notices_form.html",
        {"page": "formulary", "lot": lot, "clinic": lot.product.clinic, "notice_form": form},
        status=400,
    )
