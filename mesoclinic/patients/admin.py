from __future__ import annotations

from django.contrib import admin

from mesoclinic.accounts.admin import ClinicScopedAdmin, ClinicScopedInline
from mesoclinic.patients.models import (
    Allergy,
    Consent,
    ConsentTemplate,
    Patient,
    Screening,
    ScreeningForm,
)


class AllergyInline(ClinicScopedInline):
    model = Allergy
    extra = 0
    # An allergy is never deleted: the chart's allergies page marks it as entered in error.
    can_delete = False


@admin.register(Patient)
class PatientAdmin(ClinicScopedAdmin):
    patient_path = "pk"
    list_display = ("last_name", "first_name", "date_of_birth", "phone", "email")
    search_fields = ("last_name", "first_name", "email", "phone")
    inlines = [AllergyInline]


@admin.register(Screening)
class ScreeningAdmin(ClinicScopedAdmin):
    clinic_path = "patient__clinic"
    patient_path = "patient"
    list_display = ("patient", "result", "screened_at")
    readonly_fields = (
        "patient",
        "form",
        "answers",
        "result",
        "reasons",
        "screened_at",
        "screened_by",
    )

    def has_add_permission(self, request, *args):  # type: ignore[no-untyped-def]
        # Screening is scored by patients.screening; the API and the web app record it.
        return False


@admin.register(Consent)
class ConsentAdmin(ClinicScopedAdmin):
    clinic_path = "patient__clinic"
    patient_path = "patient"
    list_display = ("patient", "signed_name", "signed_at", "method")
    readonly_fields = [
        f.name for f in Consent._meta.get_fields() if f.concrete and not f.many_to_many
    ]

    def has_add_permission(self, request, *args):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(ConsentTemplate)
class ConsentTemplateAdmin(ClinicScopedAdmin):
    """A consent text is never edited in place: saving writes the next version, and every
    patient must then sign again (courses.rules: consent_outdated)."""

    list_display = ("clinic", "version", "created_at", "created_by", "change_note")
    fields = ("clinic", "body", "change_note")

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        latest = ConsentTemplate.objects.filter(clinic=obj.clinic).order_by("-version").first()
        obj.version = (latest.version + 1) if latest else 1
        obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(ScreeningForm)
class ScreeningFormAdmin(ClinicScopedAdmin):
    list_display = ("clinic", "version", "created_at")
