"""Admin for courses. A session added here goes through the same gates and the same action
as the API: the injections formset asks courses.rules for every reason to refuse, and the
save calls courses.actions.do_record_session. Charted sessions are read-only."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from mesoclinic.accounts.admin import ClinicScopedAdmin, ClinicScopedInline
from mesoclinic.courses import actions, rules
from mesoclinic.courses.models import (
    AllergyReading,
    AllergyTest,
    AllergyTestInjection,
    Course,
    FollowUp,
    Session,
    SessionInjection,
    SideEffect,
)
from mesoclinic.formulary.admin import LotAdmin
from mesoclinic.formulary.models import Lot
from mesoclinic.lib import limits
from mesoclinic.protocols.vocab import RefusalCode


class ReadOnlyAdmin(ClinicScopedAdmin):
    """Clinical records written by the actions; the admin shows them."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Course)
class CourseAdmin(ClinicScopedAdmin):
    patient_path = "patient"
    list_display = (
        "patient",
        "protocol",
        "status",
        "planned_sessions",
        "cadence_days",
        "created_at",
    )
    list_filter = ("status", "protocol__key")
    search_fields = ("patient__last_name", "patient__first_name")
    readonly_fields = ("status", "stop_reason", "created_by", "created_at")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A planned course keeps its protocol version and plan; stop it through the API.
        return obj is None and super().has_change_permission(request, obj)


class InjectionFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        session = self.instance
        if any(self.errors) or session.pk or not session.course_id or not session.practitioner_id:
            return
        rows = [
            f.cleaned_data
            for f in self.forms
            if f.cleaned_data and not f.cleaned_data.get("DELETE")
        ]
        try:
            actions.not_future(session.performed_at, "performed_at")
            actions.check_injections(
                session.course,
                [
                    actions.InjectionInput(r["area"], r["lot"], r["volume_ml"], r["technique"])
                    for r in rows
                ],
            )
        except ValidationError as exc:
            # A formset's own errors are a plain list; the action names the field.
            raise ValidationError(exc.messages) from None
        found = actions.check_session(
            session.course, session.performed_at, session.practitioner, [r["lot"] for r in rows]
        )
        problems = [
            f"{r.message} ({r.code})" for r in rules.blocking(found, session.override_codes)
        ]
        problems += [
            f"{code} cannot be overridden for this session."
            for code in rules.invalid_overrides(found, session.override_codes)
        ]
        if problems:
            raise ValidationError(problems)


class InjectionInline(ClinicScopedInline):
    model = SessionInjection
    formset = InjectionFormSet
    extra = 2
    min_num = 1

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.related_model is Lot and field is not None:
            field.queryset = LotAdmin(Lot, self.admin_site).get_queryset(request)
        return field

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)


class SessionForm(forms.ModelForm):
    override_codes = forms.MultipleChoiceField(
        choices=RefusalCode.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Only where the protocol allows it; say why below.",
    )
    # The model's text columns take any length; the form keeps them to the API's limits.
    notes = forms.CharField(required=False, max_length=limits.NOTES, widget=forms.Textarea)
    override_reason = forms.CharField(
        required=False, max_length=limits.REASON, widget=forms.Textarea
    )

    class Meta:
        model = Session
        fields = [
            "course",
            "performed_at",
            "practitioner",
            "stimulants_avoided",
            "numbing_cream",
            "burning_minutes",
            "discomfort_minutes",
            "notes",
            "override_codes",
            "override_reason",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("override_codes") and not (data.get("override_reason") or "").strip():
            self.add_error("override_reason", "An override must say why.")
        return data


@admin.register(Session)
class SessionAdmin(ClinicScopedAdmin):
    clinic_path = "course__clinic"
    patient_path = "course__patient"
    form = SessionForm
    inlines = [InjectionInline]
    list_display = ("course", "number", "kind", "performed_at", "practitioner")
    list_filter = ("kind",)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # Saved in save_related, with the injections, by the same action the API uses.
        pass

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        session = form.instance
        rows = [
            f.cleaned_data
            for formset in formsets
            for f in formset.forms
            if f.cleaned_data and not f.cleaned_data.get("DELETE")
        ]
        saved = actions.do_record_session(
            session.course,
            performed_at=session.performed_at,
            practitioner=session.practitioner,
            injections=[
                actions.InjectionInput(r["area"], r["lot"], r["volume_ml"], r["technique"])
                for r in rows
            ],
            stimulants_avoided=session.stimulants_avoided,
            numbing_cream=session.numbing_cream,
            burning_minutes=session.burning_minutes,
            discomfort_minutes=session.discomfort_minutes,
            notes=session.notes,
            override_codes=list(session.override_codes),
            override_reason=session.override_reason,
            user=request.user,
            via="admin",
        )
        session.pk, session.number = saved.pk, saved.number
        session._state.adding = False
        # The admin's history message reads what each formset saved.
        for formset in formsets:
            formset.new_objects = list(saved.injections.all())
            formset.changed_objects, formset.deleted_objects = [], []


class TestInjectionInline(ClinicScopedInline):
    model = AllergyTestInjection
    extra = 0
    can_delete = False
    readonly_fields = ("lot", "site", "given_at", "given_by")


class ReadingInline(ClinicScopedInline):
    model = AllergyReading
    extra = 0
    can_delete = False
    readonly_fields = ("read_at", "read_by", "result", "notes")


@admin.register(AllergyTest)
class AllergyTestAdmin(ReadOnlyAdmin):
    clinic_path = "course__clinic"
    patient_path = "course__patient"
    list_display = ("course", "given_at", "given_by")
    inlines = [TestInjectionInline, ReadingInline]


@admin.register(SideEffect)
class SideEffectAdmin(ReadOnlyAdmin):
    clinic_path = "session__course__clinic"
    patient_path = "session__course__patient"
    list_display = ("session", "kind", "grade", "status", "onset_at", "resolved_at")
    list_filter = ("status", "kind")


@admin.register(FollowUp)
class FollowUpAdmin(ClinicScopedAdmin):
    patient_path = "session__course__patient"
    list_display = ("priority", "reason", "status", "opened_at")
    list_filter = ("status", "priority")
    readonly_fields = ("side_effect", "priority", "reason", "opened_at", "closed_at", "closed_by")
    fields = ("side_effect", "priority", "reason", "status", "outcome", "opened_at", "closed_at")

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if obj.status == FollowUp.Status.DONE and "status" in form.changed_data:
            actions.do_close_follow_up(obj, obj.outcome, request.user, via="admin")
        else:
            super().save_model(request, obj, form, change)
