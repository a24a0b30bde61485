"""Forms for serious adverse events on the chart. The field names are the action's
(safety.actions), so that its ValidationError lands on the field it names."""

from __future__ import annotations

from django import forms

from mesoclinic.lib import limits
from mesoclinic.safety.models import AdverseEvent
from mesoclinic.web.forms import CTCAE_GRADES, datetime_local


class AdverseEventForm(forms.Form):
    kind = forms.ChoiceField(label="Event", choices=AdverseEvent.Kind.choices)
    description = forms.CharField(
        max_length=limits.NOTES,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='What the patient reports and what you see. Needed for "Other".',
    )
    ctcae_grade = forms.TypedChoiceField(
        label="Grade (CTCAE injection site reaction)", coerce=int, choices=CTCAE_GRADES
    )
    onset_at = forms.DateTimeField(label="Onset", widget=datetime_local())
    lots = forms.TypedMultipleChoiceField(
        label="Suspected lots",
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Only the lots injected in this session can be chosen.",
    )
    outcome = forms.ChoiceField(
        label="Outcome", choices=AdverseEvent.Outcome.choices, initial="ongoing"
    )
    outcome_at = forms.DateTimeField(
        label="Ended at",
        required=False,
        widget=datetime_local(),
        help_text="Only when it has ended (recovered, with lasting effects, or fatal).",
    )
    actions_taken = forms.CharField(
        max_length=limits.NOTES,
        label="Actions taken",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    snomed_code = forms.CharField(
        label="SNOMED CT code",
        required=False,
        max_length=18,
        help_text="Optional: the concept id your reporting system uses. It is checked by its "
        "check digit; mesoclinic ships no codes.",
    )
    side_effect = forms.TypedChoiceField(
        label="Escalated from side effect", coerce=int, required=False, empty_value=None
    )

    def __init__(
        self,
        lots: list[tuple[int, str]],
        side_effects: list[tuple[int, str]],
        zone: str,
        *args: object,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["lots"].choices = lots  # type: ignore[attr-defined]
        self.fields["side_effect"].choices = [("", "None")] + side_effects  # type: ignore[attr-defined]
        self.fields["onset_at"].help_text = f"When it began, in the clinic's time ({zone})."


class UpdateAdverseEventForm(forms.Form):
    outcome = forms.ChoiceField(label="Outcome", choices=AdverseEvent.Outcome.choices)
    outcome_at = forms.DateTimeField(
        label="Ended at",
        required=False,
        widget=datetime_local(),
        help_text="Only when it has ended.",
    )
    actions_taken = forms.CharField(
        max_length=limits.NOTES,
        label="Actions taken",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
