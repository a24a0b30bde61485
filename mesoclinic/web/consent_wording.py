"""The consent wording page for a clinic's managers (/manage/consent/): the wording in use, a
preview of it as a patient reads it, and a new version saved from an edited copy. A version is
never changed in place: saving writes the next one (patients/actions.do_change_consent_wording),
and every patient signs it before their next session."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from mesoclinic.access import products_for
from mesoclinic.lib import limits
from mesoclinic.patients import consent as consent_text
from mesoclinic.patients.actions import do_change_consent_wording
from mesoclinic.patients.models import ConsentTemplate
from mesoclinic.web.context import MANAGER, caller
from mesoclinic.web.forms import put_errors


class WordingForm(forms.Form):
    body = forms.CharField(
        label="Consent wording",
        max_length=limits.CONSENT_TEXT,
        widget=forms.Textarea(attrs={"rows": 22}),
        help_text=(
            "What the patient reads and signs. The regulatory status of each product planned "
            "for them is added below it from the formulary: do not write it here."
        ),
    )
    change_note = forms.CharField(
        label="What changed",
        max_length=300,
        required=False,
        help_text="Kept with the version, for whoever reads its history.",
    )
    base_version = forms.IntegerField(widget=forms.HiddenInput)


@login_required
def consent_wording(request: HttpRequest) -> HttpResponse:
    who = caller(request)
    clinic = who.require(MANAGER).clinic
    current = consent_text.current_template(clinic)
    if request.method == "POST":
        form = WordingForm(request.POST)
        if form.is_valid() and "save" in request.POST:
            data = form.cleaned_data
            try:
                new = do_change_consent_wording(
                    clinic,
                    data["body"],
                    request.user,
                    base_version=data["base_version"],
                    note=data["change_note"],
                )
            except ValidationError as exc:
                put_errors(form, exc)
                # When another version was saved meanwhile, the error names it and the next
                # save starts from it, once the manager has read it.
                current = consent_text.current_template(clinic)
                data = request.POST.copy()
                data["base_version"] = str(current.version)
                form.data = data
            else:
                messages.success(
                    request,
                    f"Version {new.version} of the consent wording is in use. Each patient signs "
                    "it before their next session.",
                )
                return redirect("web:manage_consent")
    else:
        form = WordingForm(initial={"body": current.body, "base_version": current.version})
    # The preview shows the wording being edited, or the one in use, with the regulatory section
    # as it reads for the clinic's active products.
    body = form.data.get("body", "") if form.is_bound else current.body
    products = (
        products_for(who, MANAGER)
        .filter(active=True)
        .prefetch_related("components__ingredient")
        .order_by("name")
    )
    preview = consent_text.render(ConsentTemplate(body=body.strip()), products, None, [])
    history = ConsentTemplate.objects.filter(clinic=clinic).select_related("created_by")
    return render(
        request,
        "web/manage/consent.html",
        {
            "page": "setup",
            "form": form,
            "current": current,
            "preview": preview,
            "previewing": form.is_bound,
            "history": history.order_by("-version"),
        },
    )
