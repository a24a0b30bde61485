"""The licence form for a renewal or a correction: the new expiry must come after that of the
licence it renews (so the latest expiry, which the session gate and the booking read, is always
the current licence's)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms

from mesoclinic.web.manage_forms import LicenceForm

LICENCE_DATA = ("kind", "number", "jurisdiction", "expires_on")


class RenewForm(LicenceForm):
    def __init__(self, *args: Any, after: dt.date | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.after = after

    def clean_expires_on(self) -> dt.date:
        day: dt.date = self.cleaned_data["expires_on"]
        if self.after is not None and day <= self.after:
            raise forms.ValidationError(
                f"The new expiry must come after {self.after:%-d %b %Y}, when the licence "
                "it renews expires."
            )
        return day


class PhotoForm(forms.Form):
    """The address of a practitioner's photo for the public site: https only, as the logo."""

    photo_url = forms.URLField(
        label="Photo address",
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text="The https address of a photo of this practitioner, shown beside their "
        "licences on the clinic's public site. Leave it empty for none.",
    )

    def clean_photo_url(self) -> str:
        url = str(self.cleaned_data.get("photo_url") or "")
        if url and not url.startswith("https://"):
            raise forms.ValidationError("The address must begin with https://.")
        return url
