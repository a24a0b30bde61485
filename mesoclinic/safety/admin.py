"""Serious adverse events and the infection-watch outbox, for the clinic's manager to look
into. Both are read-only here: an event is recorded and updated through safety.actions (on the
chart or the API), which validate and audit; prompts are written by the worker and the
patient's answer only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from mesoclinic.accounts.admin import ClinicScopedAdmin
from mesoclinic.safety.models import AdverseEvent, WatchPrompt


class ReadOnly(ClinicScopedAdmin):
    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AdverseEvent)
class AdverseEventAdmin(ReadOnly):
    patient_path = "patient"
    list_display = ("patient", "kind", "ctcae_grade", "onset_at", "outcome", "reported_by")
    list_filter = ("kind", "ctcae_grade", "outcome")
    ordering = ("-onset_at",)


@admin.register(WatchPrompt)
class WatchPromptAdmin(ReadOnly):
    patient_path = "session__course__patient"
    list_display = ("session", "week", "due_at", "status", "skip_reason", "attempts", "answered_at")
    list_filter = ("status", "week", "skip_reason")
    ordering = ("-due_at",)
