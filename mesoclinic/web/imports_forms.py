"""Forms of the CSV import pages: the upload, and the column chosen for each field."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from mesoclinic.imports.actions import Field
from mesoclinic.imports.models import ImportJob


def size_words(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    return f"{max(1, size // 1024)} KB"


class UploadForm(forms.Form):
    kind = forms.ChoiceField(
        label="What the file holds",
        choices=ImportJob.Kind.choices,
        widget=forms.RadioSelect,
    )
    file = forms.FileField(
        label="CSV file",
        help_text="A comma- or semicolon-separated file whose first row names the columns.",
        error_messages={"required": "Choose the file to import.", "empty": "This file is empty."},
    )

    def clean_file(self) -> UploadedFile:
        upload: UploadedFile = self.cleaned_data["file"]
        limit = int(settings.IMPORT_MAX_BYTES)
        if (upload.size or 0) > limit:
            raise forms.ValidationError(
                f"This file is {size_words(upload.size or 0)}; at most {size_words(limit)} "
                "can be imported at once. Split it into smaller files."
            )
        return upload


NOT_IN_FILE = ""


class MappingForm(forms.Form):
    """One choice per field: which of the file's columns holds it, or none."""

    def __init__(self, fields: list[Field], headers: list[str], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.import_fields = fields
        choices = [(NOT_IN_FILE, "Not in the file")] + [
            (str(i), header or f"Column {i + 1} (no name)") for i, header in enumerate(headers)
        ]
        for f in fields:
            self.fields[f.key] = forms.ChoiceField(
                label=f.label,
                choices=choices,
                required=f.required,
                help_text=f.help,
                error_messages={
                    "required": f"Choose the column that holds the {f.label.lower()}: it is needed."
                },
            )

    @staticmethod
    def initial_from(mapping: dict[str, int | None]) -> dict[str, str]:
        return {key: NOT_IN_FILE if index is None else str(index) for key, index in mapping.items()}

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        chosen: dict[str, str] = {}
        for f in self.import_fields:
            column = data.get(f.key)
            if not column:
                continue
            if column in chosen:
                self.add_error(f.key, f"This column is already chosen for {chosen[column]}.")
            else:
                chosen[column] = f.label.lower()
        return data

    def mapping(self) -> dict[str, int | None]:
        return {
            f.key: int(self.cleaned_data[f.key]) if self.cleaned_data.get(f.key) else None
            for f in self.import_fields
        }
