from __future__ import annotations

from django import forms


class ChangeRequestForm(forms.Form):
    message = forms.CharField(
        label="What would suit you better? (optional)",
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="For example, another day or time of day. The clinic will contact you.",
    )
