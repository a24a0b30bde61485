"""The infection-watch questionnaire a patient answers from the emailed link."""

from __future__ import annotations

from django import forms

from mesoclinic.safety import logic

YES_NO = [("yes", "Yes"), ("no", "No")]


class WatchAnswerForm(forms.Form):
    """One yes/no question per sign (logic.QUESTIONS), each required so that "not answered"
    is never read as "no", and free text."""

    notes = forms.CharField(
        label="Anything else you want the clinic to know?",
        required=False,
        max_length=logic.NOTES_MAX,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        questions = {
            q.key: forms.ChoiceField(label=q.text, choices=YES_NO, widget=forms.RadioSelect)
            for q in logic.QUESTIONS
        }
        # The questions first, the free text last.
        self.fields = {**questions, "notes": self.fields["notes"]}

    def answers(self) -> dict[str, object]:
        data = self.cleaned_data
        return {
            **{q.key: data[q.key] == "yes" for q in logic.QUESTIONS},
            "notes": data.get("notes", ""),
        }
