"""The outbox and patients' change requests, for the clinic's manager to look into. Reminders
are written by the worker only; a change request is marked handled here until the front desk
has a page for it."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from mesoclinic.accounts.admin import ClinicScopedAdmin
from mesoclinic.reminders.models import ChangeRequest, Reminder


@admin.register(Reminder)
class ReminderAdmin(ClinicScopedAdmin):
    patient_path = "appointment__patient"
    list_display = ("appointment", "kind", "due_at", "status", "skip_reason", "attempts", "sent_at")
    list_filter = ("status", "kind", "skip_reason")
    ordering = ("-due_at",)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ChangeRequest)
class ChangeRequestAdmin(ClinicScopedAdmin):
    patient_path = "appointment__patient"
    list_display = ("appointment", "planned_for", "created_at", "handled_at")
    list_filter = ("handled_at",)
    readonly_fields = (
        "clinic",
        "appointment",
        "planned_for",
        "message",
        "created_at",
        "updated_at",
    )
    fields = (*readonly_fields, "handled_at", "handled_by")

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False
