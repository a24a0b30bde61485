"""Forms of the patient's record: medications, allergies, the ingredient picker, the screening
with its allergy follow-up, and merging two records."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import QuerySet

from mesoclinic.formulary.models import Ingredient
from mesoclinic.lib import limits
from mesoclinic.patients.models import Patient
from mesoclinic.patients.records import MERGEABLE, AllergyEntry, label_of, shown
from mesoclinic.patients.screening import ALLERGY_QUESTION
from mesoclinic.web.forms import ScreeningForm


class IngredientChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.name)


class IngredientChoices(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.name)


class MedicationForm(forms.Form):
    name = forms.CharField(label="Medicine", max_length=200)
    dose = forms.CharField(
        label="Dose", max_length=200, required=False, help_text="For example 5 mg once a day."
    )
    since = forms.DateField(
        label="Taken since", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )


class StopMedicationForm(forms.Form):
    stopped_on = forms.DateField(label="Stopped on", widget=forms.DateInput(attrs={"type": "date"}))


class AllergyForm(forms.Form):
    ingredient = IngredientChoice(
        label="Ingredient",
        queryset=Ingredient.objects.none(),
        required=False,
        widget=forms.RadioSelect,
    )
    substance = forms.CharField(
        label="Or another substance",
        max_length=200,
        required=False,
        help_text="When it is none of the clinic's ingredients, name it in words.",
    )
    reaction = forms.CharField(label="Reaction", max_length=200, required=False)
    noticed = forms.CharField(
        label="When",
        max_length=100,
        required=False,
        help_text="When it happened, as the patient says (for example, summer 2019).",
    )

    def __init__(self, ingredients: QuerySet[Ingredient], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["ingredient"].queryset = ingredients  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("ingredient") and not str(cleaned.get("substance") or "").strip():
            self.add_error("ingredient", "Choose an ingredient, or name another substance.")
        return cleaned

    def entry(self) -> AllergyEntry:
        data = self.cleaned_data
        return AllergyEntry(
            ingredient=data["ingredient"],
            substance=data["substance"],
            reaction=data["reaction"],
            noticed=data["noticed"],
        )


class AllergyErrorForm(forms.Form):
    reason = forms.CharField(
        label="Why it was entered in error", max_length=500, widget=forms.TextInput
    )


class ScreeningWithAllergiesForm(ScreeningForm):
    """The screening questions; when the allergy question is answered yes, what the patient
    is allergic to: ingredients from the picker, other substances in words."""

    def __init__(
        self,
        questions: list[dict[str, str]],
        ingredients: QuerySet[Ingredient],
        *args: object,
        **kwargs: object,
    ) -> None:
        super().__init__(questions, *args, **kwargs)
        self.allergy_question = ALLERGY_QUESTION
        self.asks_allergens = ALLERGY_QUESTION in self.fields
        if self.asks_allergens:
            self.fields["allergy_ingredients"] = IngredientChoices(
                label="Allergic to these ingredients",
                queryset=ingredients,
                required=False,
                widget=forms.CheckboxSelectMultiple,
            )
            self.fields["allergy_other"] = forms.CharField(
                label="Or to other substances",
                max_length=limits.NOTES,
                required=False,
                help_text="One a line, when they are none of the clinic's ingredients.",
                widget=forms.Textarea(attrs={"rows": 2}),
            )
            self.fields["allergy_reaction"] = forms.CharField(
                label="What happened", max_length=200, required=False
            )

    def answers(self) -> dict[str, bool]:
        extra = ("allergy_ingredients", "allergy_other", "allergy_reaction")
        return {k: v for k, v in self.cleaned_data.items() if k not in extra}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        said_yes = self.asks_allergens and cleaned.get(ALLERGY_QUESTION)
        if said_yes and not cleaned.get("allergy_ingredients") and not self.other_substances():
            self.add_error(
                "allergy_ingredients",
                "The patient answered yes: choose what they are allergic to, "
                "or name it under other substances.",
            )
        return cleaned

    def other_substances(self) -> list[str]:
        text = str(self.cleaned_data.get("allergy_other") or "")
        return [line.strip() for line in text.splitlines() if line.strip()]

    def allergies(self) -> list[AllergyEntry]:
        if not (self.asks_allergens and self.cleaned_data.get(ALLERGY_QUESTION)):
            return []
        reaction = str(self.cleaned_data.get("allergy_reaction") or "")
        return [
            AllergyEntry(ingredient=i, reaction=reaction)
            for i in self.cleaned_data.get("allergy_ingredients") or []
        ] + [AllergyEntry(substance=s, reaction=reaction) for s in self.other_substances()]

    @property
    def question_fields(self) -> list[Any]:
        extra = ("allergy_ingredients", "allergy_other", "allergy_reaction")
        return [self[name] for name in self.fields if name not in extra]


class ChooseOtherForm(forms.Form):
    other = forms.IntegerField(
        label="Record number of the duplicate",
        min_value=1,
        help_text="The number shown after # on the duplicate's page.",
    )


class MergeForm(forms.Form):
    """For each value that differs between the two records, which one to keep."""

    def __init__(self, keep: Patient, other: Patient, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.differing = [n for n in MERGEABLE if getattr(keep, n) != getattr(other, n)]
        for name in self.differing:
            mine, theirs = shown(getattr(keep, name)) or "(empty)", shown(getattr(other, name))
            self.fields[name] = forms.ChoiceField(
                label=label_of(name),
                choices=[("keep", mine), ("other", theirs or "(empty)")],
                initial="keep" if getattr(keep, name) not in ("", None) else "other",
                required=False,  # a value not chosen stays as the kept record has it
                widget=forms.RadioSelect,
            )

    def take_from_other(self) -> list[str]:
        return [n for n in self.differing if self.cleaned_data.get(n) == "other"]
