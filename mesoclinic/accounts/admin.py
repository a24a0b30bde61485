"""Admin for clinics, staff and the audit trail.

A superuser sees everything. A clinic manager with staff status sees only the clinics they
manage: every admin class here and in the other apps derives from ClinicScopedAdmin."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from mesoclinic.accounts.models import (
    AuditEvent,
    Clinic,
    Membership,
    PractitionerLicence,
    User,
    audit,
)


def managed_clinic_ids(request: HttpRequest) -> list[int]:
    """The clinics whose rows the user may see here: the access layer decides, as it does for
    the web app and the API."""
    # Imported here: the access layer reads every app above accounts, which this module,
    # loaded by each of them, must not pull in at import time.
    from mesoclinic.access import managed_clinic_ids as managed

    return managed(request.user)


class ClinicScopedAdmin(admin.ModelAdmin):
    """Limits rows, foreign-key choices and permissions to the clinics the user manages.
    `clinic_path` is the lookup from the model to its clinic ("clinic", "patient__clinic")."""

    clinic_path = "clinic"
    audit_reads = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(**{f"{self.clinic_path}__in": managed_clinic_ids(request)})

    def _allowed(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser or managed_clinic_ids(request))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self._allowed(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Clinical records are never deleted from the admin; only a superuser may.
        return bool(request.user.is_superuser)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        """Offer only the related rows of the user's clinics, scoped the way the related
        model's own admin scopes them."""
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if request.user.is_superuser or field is None:
            return field
        clinics = managed_clinic_ids(request)
        model = db_field.related_model
        related_admin = self.admin_site._registry.get(model)
        if isinstance(related_admin, ClinicScopedAdmin):
            field.queryset = related_admin.get_queryset(request)
        elif model is User:
            field.queryset = User.objects.filter(memberships__clinic__in=clinics).distinct()
        return field

    def _clinic_of(self, obj: Model) -> Any:
        target: Any = obj
        for part in self.clinic_path.split("__"):
            target = getattr(target, part)
        return target

    def _patient_id(self, obj: Model) -> int | None:
        return None

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> Any:
        response = super().change_view(request, object_id, form_url, extra_context)
        if self.audit_reads and request.method == "GET" and response.status_code == 200:
            obj = self.get_object(request, object_id)
            if obj is not None:
                audit(
                    clinic=self._clinic_of(obj),
                    user=request.user,
                    action=AuditEvent.Action.VIEW,
                    obj=obj,
                    patient_id=self._patient_id(obj),
                    via="admin",
                )
        return response

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        audit(
            clinic=self._clinic_of(obj),
            user=request.user,
            action=AuditEvent.Action.UPDATE if change else AuditEvent.Action.CREATE,
            obj=obj,
            patient_id=self._patient_id(obj),
            via="admin",
            fields=sorted(form.changed_data),
        )


class ClinicScopedInline(admin.TabularInline):
    """An inline whose permissions follow the clinic scope of its parent admin."""

    def _allowed(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser or managed_clinic_ids(request))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)


@admin.register(User)
class MesoUserAdmin(UserAdmin):
    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(memberships__clinic__in=managed_clinic_ids(request)).distinct()

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser or managed_clinic_ids(request))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A manager may not edit a superuser or grant superuser status.
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return self.has_module_permission(request)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if request.user.is_superuser:
            return super().get_readonly_fields(request, obj)
        return ("is_superuser", "groups", "user_permissions", "last_login", "date_joined")


@admin.register(Clinic)
class ClinicAdmin(ClinicScopedAdmin):
    clinic_path = "pk"
    list_display = ("name", "city", "timezone", "currency")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Clinic]:
        qs = admin.ModelAdmin.get_queryset(self, request)
        if request.user.is_superuser:
            return qs
        return qs.filter(pk__in=managed_clinic_ids(request))

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return bool(request.user.is_superuser)

    def _clinic_of(self, obj: Model) -> Any:
        return obj

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        from mesoclinic.patients.actions import do_setup_clinic

        super().save_model(request, obj, form, change)
        do_setup_clinic(obj)


@admin.register(Membership)
class MembershipAdmin(ClinicScopedAdmin):
    list_display = ("user", "clinic", "role")
    list_filter = ("role",)


@admin.register(PractitionerLicence)
class PractitionerLicenceAdmin(ClinicScopedAdmin):
    list_display = ("user", "kind", "number", "jurisdiction", "expires_on")


@admin.register(AuditEvent)
class AuditEventAdmin(ClinicScopedAdmin):
    list_display = ("at", "user", "action", "object_type", "object_id", "patient_id", "via")
    list_filter = ("action", "via")
    search_fields = ("object_type", "object_id")
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        raise PermissionError("The audit trail is append-only.")
