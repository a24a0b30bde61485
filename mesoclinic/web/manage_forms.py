"""Forms for the manager's pages: products, lots, recalls, staff and licences."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal
from typing import Any

from django import forms
from django.db.models import Q

from mesoclinic.accounts.models import Clinic, Membership, PractitionerLicence, User
from mesoclinic.formulary import stock
from mesoclinic.formulary.models import Ingredient, Lot, Product, ProductIngredient, Vial
from mesoclinic.lib import limits
from mesoclinic.protocols.vocab import Indication

DATE = forms.DateInput(attrs={"type": "date"})


class ProductForm(forms.ModelForm):
    indications = forms.MultipleChoiceField(
        label="Indications",
        choices=Indication.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="What the product is for. A course plans only the products for its "
        "indication, and the lots of any other product are refused. Leave them all unticked "
        "for a product used with every indication, such as a local anaesthetic.",
    )

    class Meta:
        model = Product
        fields = [
            "name",
            "supplier",
            "vial",
            "vial_ml",
            "beyond_use_days",
            "reorder_vials",
            "indications",
        ]
        labels = {
            "vial": "Vial",
            "vial_ml": "Volume (mL)",
            "beyond_use_days": "Beyond-use days once opened",
            "reorder_vials": "Reorder level (unopened)",
        }
        help_texts = {
            "vial_ml": "What one vial holds.",
            "beyond_use_days": "At most 28, after USP General Chapter <797>, unless the maker "
            "says less. A session from a vial opened longer ago is refused.",
            "reorder_vials": "Today warns when the unopened vials of the product's usable lots "
            "fall to this number. 0: no warning.",
        }

    # The stock settings may be left empty (and the importer never fills them): each then
    # keeps its default (formulary.models.Product).
    STOCK_FIELDS = ("vial_ml", "beyond_use_days", "reorder_vials")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in self.STOCK_FIELDS:
            self.fields[name].required = False

    def _or_default(self, name: str) -> Any:
        value = self.cleaned_data.get(name)
        if value is None:
            return getattr(self.instance, name)
        return value

    def clean_vial_ml(self) -> Any:
        return self._or_default("vial_ml")

    def clean_beyond_use_days(self) -> Any:
        return self._or_default("beyond_use_days")

    def clean_reorder_vials(self) -> Any:
        return self._or_default("reorder_vials")

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"]).strip()
        # The unique constraint covers the clinic, which is not a field of this form, so
        # Django would not check it: ask here and name the field.
        taken = Product.objects.filter(clinic=self.instance.clinic, name__iexact=name)
        if taken.exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("This clinic already has a product with this name.")
        return name

    def clean_supplier(self) -> str:
        return str(self.cleaned_data["supplier"]).strip()


class ComponentForm(forms.Form):
    ingredient = forms.ModelChoiceField(queryset=Ingredient.objects.none())
    concentration = forms.DecimalField(
        max_digits=10,
        decimal_places=4,
        min_value=0,
        widget=forms.NumberInput(attrs={"step": "any"}),
    )
    unit = forms.CharField(max_length=20, initial="mg/mL")

    def __init__(self, *args: Any, clinic: Clinic, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["ingredient"]
        assert isinstance(field, forms.ModelChoiceField)
        # The shipped reference ingredients and the clinic's own.
        field.queryset = Ingredient.objects.filter(Q(clinic=None) | Q(clinic=clinic))

    def has_changed(self) -> bool:
        # The unit has an initial value; a row with only that is still an empty row.
        return any(name != "unit" for name in self.changed_data)


class BaseComponentFormSet(forms.BaseFormSet):
    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        seen: set[int] = set()
        for form in self.forms:
            ingredient = form.cleaned_data.get("ingredient")
            if ingredient is None:
                continue
            if ingredient.pk in seen:
                raise forms.ValidationError(f"{ingredient} is listed twice.")
            seen.add(ingredient.pk)


ComponentFormSet = forms.formset_factory(
    ComponentForm, formset=BaseComponentFormSet, extra=3, min_num=1, validate_min=True
)


def save_components(product: Product, formset: Any) -> list[ProductIngredient]:
    return [
        ProductIngredient.objects.create(
            product=product,
            ingredient=form.cleaned_data["ingredient"],
            concentration=form.cleaned_data["concentration"],
            unit=form.cleaned_data["unit"].strip(),
        )
        for form in formset.forms
        if form.cleaned_data.get("ingredient") is not None
    ]


class LotForm(forms.ModelForm):
    class Meta:
        model = Lot
        fields = ["lot_number", "expires_on", "received_on"]
        labels = {"expires_on": "Expires on", "received_on": "Received on"}
        widgets = {"expires_on": DATE, "received_on": DATE}

    def clean_lot_number(self) -> str:
        number = str(self.cleaned_data["lot_number"]).strip()
        if Lot.objects.filter(product=self.instance.product, lot_number__iexact=number).exists():
            raise forms.ValidationError("This product already has a lot with this number.")
        return number

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        expires, received = data.get("expires_on"), data.get("received_on")
        if expires and received and expires < received:
            self.add_error("expires_on", "The expiry date is before the date the lot came in.")
        return data


class StockForm(forms.Form):
    """A change to a lot's stock, by kind: vials received, mL wasted, or a shelf count. Its
    fields are prefixed "stock-", apart from the recall form's on the same page."""

    prefix = "stock"

    KINDS = [
        ("received", "Vials received"),
        ("waste", "mL wasted"),
        ("count", "Unopened vials counted"),
    ]
    kind = forms.ChoiceField(label="What happened", choices=KINDS)
    amount = forms.DecimalField(
        label="How many",
        min_value=Decimal("0"),
        max_value=Decimal("100000"),
        decimal_places=2,
        help_text="Vials for a delivery or a count; mL for waste.",
    )
    reason = forms.CharField(
        label="Details",
        max_length=limits.REASON,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Waste and counts need one: what was thrown away and why, or who counted.",
    )
    vial_cost = forms.DecimalField(
        label="Cost of a vial",
        required=False,
        min_value=Decimal("0"),
        max_value=Decimal("1000000"),
        max_digits=14,
        decimal_places=3,
        help_text="For a delivery: what one vial cost, in the clinic's currency. The stock's "
        "value at cost counts it.",
    )

    def __init__(self, *args: Any, currency: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency
        if currency:
            self.fields["vial_cost"].label = f"Cost of a vial ({currency})"

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        kind, amount = data.get("kind"), data.get("amount")
        cost = data.get("vial_cost")
        if cost is not None and kind != "received":
            self.add_error("vial_cost", "Only a delivery has a cost; leave it empty.")
        elif cost is not None and self.currency:
            try:
                stock.check_cost(cost, self.currency)
            except forms.ValidationError as exc:
                said = exc.message_dict["vial_cost"][0]
                self.add_error("vial_cost", said[:1].upper() + said[1:])
        if kind in ("received", "count") and amount is not None and amount != int(amount):
            self.add_error("amount", "Vials are counted in whole numbers.")
        if kind == "received" and amount is not None and amount < 1:
            self.add_error("amount", "A delivery is at least one vial.")
        if kind == "waste" and amount is not None and amount <= 0:
            self.add_error("amount", "Waste is more than 0 mL.")
        if kind in ("waste", "count") and not str(data.get("reason", "")).strip():
            self.add_error("reason", "Say why: what was thrown away, or who counted.")
        return data


class CloseVialForm(forms.Form):
    reason = forms.ChoiceField(label="Why it is closed", choices=Vial.Closed.choices)
    note = forms.CharField(max_length=limits.REASON, required=False, label="Note")

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        if data.get("reason") == Vial.Closed.OTHER and not str(data.get("note", "")).strip():
            self.add_error("note", "Say why the vial is closed.")
        return data


class RecallForm(forms.Form):
    reason = forms.CharField(
        max_length=limits.REASON,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="The supplier's notice or what was found, for the record.",
    )

    def clean_reason(self) -> str:
        reason = str(self.cleaned_data["reason"]).strip()
        if not reason:
            raise forms.ValidationError("A recall needs a reason.")
        return reason


class InviteForm(forms.Form):
    username = forms.CharField(max_length=150)
    first_name = forms.CharField(max_length=150)
    last_name = forms.CharField(max_length=150)
    email = forms.EmailField(help_text="The invitation goes here; they choose their password.")
    role = forms.ChoiceField(choices=Membership.Role.choices)

    def clean_username(self) -> str:
        username = str(self.cleaned_data["username"]).strip()
        field = User._meta.get_field("username")
        for validator in field.validators:
            validator(username)
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("This username is taken.")
        return username

    def clean_email(self) -> str:
        email = str(self.cleaned_data["email"]).strip()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this email already exists.")
        return email


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)

    def __init__(self, *args: Any, member: Membership, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.member = member

    def clean_role(self) -> str:
        role = str(self.cleaned_data["role"])
        managers = Membership.objects.filter(
            clinic=self.member.clinic, role=Membership.Role.MANAGER
        )
        if (
            self.member.role == Membership.Role.MANAGER
            and role != Membership.Role.MANAGER
            and not managers.exclude(pk=self.member.pk).exists()
        ):
            # Otherwise nobody could manage the clinic from the web any more.
            raise forms.ValidationError("The clinic needs at least one manager.")
        return role


class LicenceForm(forms.ModelForm):
    lookup_url = forms.URLField(
        label="Licensing board's lookup page",
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text="The page of the licensing board where anyone can check this licence. "
        "The clinic's public site links to it.",
    )

    class Meta:
        model = PractitionerLicence
        fields = ["kind", "number", "jurisdiction", "expires_on", "lookup_url"]
        labels = {"expires_on": "Expires on", "lookup_url": "Licensing board's lookup page"}
        widgets = {"expires_on": DATE}

    def clean_number(self) -> str:
        return str(self.cleaned_data["number"]).strip()

    def clean_jurisdiction(self) -> str:
        return str(self.cleaned_data["jurisdiction"]).strip()


def _timezones() -> list[tuple[str, str]]:
    names = sorted(zoneinfo.available_timezones() - {"localtime", "Factory"})
    return [(n, n.replace("_", " ")) for n in names if "/" in n or n == "UTC"]


class ClinicSettingsForm(forms.ModelForm):
    """The clinic's details: who it is, where, how it writes dates and times, and how its
    public site looks."""

    logo_url = forms.URLField(
        label="Logo address",
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text="The address of the clinic's logo, beginning with https://, shown on its "
        "public site. Leave empty for none.",
    )

    def clean_slug(self) -> str:
        slug = str(self.cleaned_data.get("slug") or "").strip().lower()
        if not slug:
            return str(self.instance.slug or "")
        return slug

    def clean_brand_colour(self) -> str:
        colour = str(self.cleaned_data.get("brand_colour") or "").lower()
        return colour or str(self.instance.brand_colour or "#2f5d8a")

    def clean_logo_url(self) -> str:
        url = str(self.cleaned_data.get("logo_url") or "")
        if url and not url.startswith("https://"):
            raise forms.ValidationError("Give an address that begins with https://.")
        return url

    timezone = forms.ChoiceField(
        label="Time zone",
        help_text="Visits, reminders and the calendar follow this clock.",
    )
    address = forms.CharField(
        max_length=limits.ADDRESS,
        required=False,
        label="Address",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="The street address patients come to, printed on their documents.",
    )
    # Longer than a code, so that "dollars" is answered by the check below, not by a length.
    currency = forms.CharField(
        max_length=20,
        label="Currency",
        help_text="The three-letter code of the currency prices are in, such as USD, EUR or GBP.",
    )

    class Meta:
        model = Clinic
        fields = [
            "name",
            "address",
            "city",
            "phone",
            "timezone",
            "currency",
            "date_format",
            "time_format",
            "locale",
            "baseline_required",
            "quiet_from",
            "quiet_until",
            "slug",
            "brand_colour",
            "logo_url",
            "patient_change_hours",
        ]
        widgets = {
            "quiet_from": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "quiet_until": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        }
        labels = {
            "slug": "Public site address",
            "brand_colour": "Public site colour",
            "logo_url": "Logo address",
            "name": "Clinic name",
            "address": "Address",
            "city": "City",
            "phone": "The clinic's phone number",
            "currency": "Currency",
            "date_format": "Date format",
            "time_format": "Time format",
            "locale": "Language and region",
            "quiet_from": "No text messages from",
            "quiet_until": "No text messages until",
            "patient_change_hours": "Patients may move or cancel online up to (hours before)",
            "baseline_required": "Require a baseline measurement before session 1",
        }
        help_texts = {
            "phone": "Patients are told to call it when something is urgent: in reminders, "
            "infection-watch emails and their questionnaire.",
            "currency": "The three-letter code of the currency prices are in, such as USD, "
            "EUR or GBP.",
            "date_format": "How every page writes a date, and how dates may be typed.",
            "locale": "The region the clinic works in; the pages are in English.",
            "baseline_required": "When on, session 1 of a course is refused until a measurement "
            "has been recorded on the course, so that its progress has a starting point.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A new clinic's address is made from its name when left empty.
        self.fields["slug"].required = False
        self.fields["brand_colour"].required = False
        self.fields["slug"].help_text = (
            "The clinic's public pages are at /site/ followed by this. Lowercase letters, "
            "digits and hyphens; left empty, it is made from the clinic's name."
        )
        self.fields["timezone"].choices = _timezones()  # type: ignore[attr-defined]
        self.fields["timezone"].initial = self.instance.timezone
        for name in ("quiet_from", "quiet_until", "patient_change_hours"):
            self.fields[name].required = False

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"]).strip()
        if not name:
            raise forms.ValidationError("Give the clinic a name.")
        return name

    def clean_address(self) -> str:
        return str(self.cleaned_data["address"]).strip()

    def clean_quiet_from(self) -> dt.time:
        # Left empty (or on a form that does not show it), the quiet hours stay as they are.
        value = self.cleaned_data.get("quiet_from")
        return value if value is not None else self.instance.quiet_from

    def clean_quiet_until(self) -> dt.time:
        value = self.cleaned_data.get("quiet_until")
        return value if value is not None else self.instance.quiet_until

    def clean_patient_change_hours(self) -> int:
        # Left empty (or on a form that does not show it), the policy stays as it is.
        value = self.cleaned_data.get("patient_change_hours")
        if value is not None and value > 336:
            raise forms.ValidationError("Give at most 336 hours (two weeks).")
        return value if value is not None else self.instance.patient_change_hours

    def clean_currency(self) -> str:
        code = str(self.cleaned_data["currency"]).strip().upper()
        if len(code) != 3 or not code.isalpha():
            raise forms.ValidationError("Enter the three-letter code, such as USD or EUR.")
        return code
