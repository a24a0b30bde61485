from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from mesoclinic.accounts.admin import ClinicScopedAdmin
from mesoclinic.protocols.loader import ProtocolError, validate_protocol
from mesoclinic.protocols.models import ClinicProtocol, do_edit_protocol


class ProtocolForm(forms.ModelForm):
    """Edits a copy of the document; the loader's validation names each wrong field."""

    document = forms.JSONField(widget=forms.Textarea(attrs={"rows": 40, "cols": 100}))

    class Meta:
        model = ClinicProtocol
        fields = ["document", "change_note"]

    def clean_document(self) -> Any:
        document = self.cleaned_data["document"]
        if not isinstance(document, dict):
            raise forms.ValidationError("The protocol must be a JSON object.")
        try:
            validate_protocol(document, "document", expected_key=self.instance.key)
        except ProtocolError as exc:
            raise forms.ValidationError([f"{f}: {m}" for f, m in exc.problems]) from None
        return document


@admin.register(ClinicProtocol)
class ClinicProtocolAdmin(ClinicScopedAdmin):
    """Saving never overwrites a version: it writes the clinic's next version, so courses
    keep the version they were planned with."""

    form = ProtocolForm
    list_display = ("name", "key", "version", "clinic", "created_at", "note")
    list_filter = ("key",)
    readonly_fields = ("key", "version", "name", "created_by", "created_at", "sources")

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    @admin.display(description="Facts and their sources")
    def sources(self, obj: ClinicProtocol) -> str:
        return json.dumps(obj.document, indent=1)[:20000]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        new = do_edit_protocol(
            obj.clinic,
            obj.key,
            form.cleaned_data["document"],
            request.user,
            form.cleaned_data.get("change_note", ""),
        )
        # Point the admin's redirect and log at the new version, leaving the old row intact.
        obj.pk, obj.version = new.pk, new.version
