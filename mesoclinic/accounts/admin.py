"""Admin for clinics, staff and the audit trail.

A superuser sees everything. A clinic manager with staff status sees only the clinics they
manage: every admin class here and in the other apps derives from ClinicScopedAdmin."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.db import models
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse

from mesoclinic.accounts.models import (
    AuditEvent,
    Clinic,
    Membership,
    PractitionerLicence,
    User,
    acting,
    audit,
    audit_many,
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
    `clinic_path` is the lookup from the model to its clinic ("clinic", "patient__clinic").

    Every change made here (an addition, a change, a deletion) writes an audit row with the
    channel "admin". An admin of patient data sets `patient_path`, the lookup from the model
    to its patient's id ("pk" for Patient, "patient_id", "course__patient_id"): its list and
    change pages then write a `view` row for each patient they show. The path ends at the
    patient relation ("pk" for Patient itself, "patient", "course__patient")."""

    # A web address typed without a scheme is taken as https, as the clinic's own pages do.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    clinic_path = "clinic"
    patient_path: str | None = None

    @property
    def audit_reads(self) -> bool:
        return self.patient_path is not None

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
        if self.patient_path is None:
            return None
        # The patient's id without loading the patient: "course__patient" reads
        # course.patient_id.
        *path, last = self.patient_path.split("__")
        target: Any = obj
        for part in path:
            target = getattr(target, part)
        found = target.pk if last == "pk" else getattr(target, f"{last}_id")
        return int(found) if found is not None else None

    def _patient_ids(self, objs: list[Model]) -> dict[Any, int | None]:
        """Each object's patient id, read in one query for a whole page of the list."""
        if self.patient_path is None or not objs:
            return {}
        rows = self.model._default_manager.filter(pk__in=[o.pk for o in objs]).values_list(
            "pk", self.patient_path
        )
        return dict(rows)

    def _audit(self, request: HttpRequest, obj: Model, action: str, **detail: Any) -> None:
        audit(
            clinic=self._clinic_of(obj),
            user=request.user,
            action=action,
            obj=obj,
            patient_id=self._patient_id(obj),
            via="admin",
            **detail,
        )

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        response = super().changelist_view(request, extra_context)
        if self.audit_reads and response.status_code == 200:
            changelist = getattr(response, "context_data", {}).get("cl")
            if changelist is not None:
                self._audit_list(request, list(changelist.result_list))
        return response

    def _audit_list(self, request: HttpRequest, objs: list[Model]) -> None:
        """One `view` row for each row the page shows, naming its patient, so the audit trail
        answers "who saw this patient" for the list as for the chart."""
        patients = self._patient_ids(objs)
        by_clinic: dict[Any, list[tuple[Model, int | None, dict[str, Any]]]] = {}
        for obj in objs:
            clinic_id = self._clinic_id_of(obj)
            by_clinic.setdefault(clinic_id, []).append((obj, patients.get(obj.pk), {"list": True}))
        for clinic_id, entries in by_clinic.items():
            audit_many(
                clinic=Clinic(pk=clinic_id) if clinic_id is not None else None,
                user=request.user,
                action=AuditEvent.Action.VIEW,
                via="admin",
                entries=entries,
            )

    def _clinic_id_of(self, obj: Model) -> Any:
        # The clinic's id without loading the clinic: "course__clinic" reads course.clinic_id.
        *path, last = self.clinic_path.split("__")
        target: Any = obj
        for part in path:
            target = getattr(target, part)
        if last == "pk":
            return target.pk
        return getattr(target, f"{last}_id")

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> Any:
        response = super().change_view(request, object_id, form_url, extra_context)
        if self.audit_reads and request.method == "GET" and response.status_code == 200:
            obj = self.get_object(request, object_id)
            if obj is not None:
                self._audit(request, obj, AuditEvent.Action.VIEW)
        return response

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        self._audit(
            request,
            obj,
            AuditEvent.Action.UPDATE if change else AuditEvent.Action.CREATE,
            fields=sorted(form.changed_data),
        )

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        """An inline's rows (a patient's allergies, a session's injections) are changes too:
        one audit row for each row added, changed or deleted, under the parent's clinic and
        patient."""
        parent = form.instance
        # A deleted row loses its primary key, so what it was is read before the save.
        going = [
            (f.instance._meta.label, str(f.instance.pk), str(f.instance)[:200])
            for f in getattr(formset, "deleted_forms", [])
            if f.instance.pk is not None
        ]
        super().save_formset(request, form, formset, change)
        clinic, patient_id = self._clinic_of(parent), self._patient_id(parent)

        def write(action: str, label: str, pk: str, **detail: Any) -> None:
            AuditEvent.objects.create(
                clinic=clinic,
                user=acting(request.user),
                action=action,
                object_type=label,
                object_id=pk,
                patient_id=patient_id,
                via="admin",
                detail=detail,
            )

        for obj in formset.new_objects:
            write(AuditEvent.Action.CREATE, obj._meta.label, str(obj.pk))
        for obj, fields in formset.changed_objects:
            write(AuditEvent.Action.UPDATE, obj._meta.label, str(obj.pk), fields=sorted(fields))
        for label, pk, text in going:
            write(AuditEvent.Action.DELETE, label, pk, label_text=text)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        # The row is written before the delete, while the object and its clinic still exist.
        self._audit(request, obj, AuditEvent.Action.DELETE, label=str(obj)[:200])
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            self._audit(request, obj, AuditEvent.Action.DELETE, label=str(obj)[:200])
        super().delete_queryset(request, queryset)


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


def manageable_users(request: HttpRequest) -> QuerySet[User]:
    """The users a clinic manager may see and change in the admin: those with a membership
    in a clinic they manage and none anywhere else, and never a superuser.

    A user who also works in another clinic is out of reach, because changing their password
    or their email would hand the other clinic's records to whoever changed it."""
    clinics = managed_clinic_ids(request)
    return (
        User.objects.filter(memberships__clinic__in=clinics, is_superuser=False)
        .exclude(memberships__clinic__in=Clinic.objects.exclude(pk__in=clinics))
        .distinct()
    )


@admin.register(User)
class MesoUserAdmin(UserAdmin):
    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(pk__in=manageable_users(request).values("pk"))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser or managed_clinic_ids(request))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_touch(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_touch(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A user's history (sessions given, audit rows) hangs on the account: deactivate it.
        return bool(request.user.is_superuser)

    def _may_touch(self, request: HttpRequest, obj: Any) -> bool:
        if request.user.is_superuser:
            return True
        if not self.has_module_permission(request):
            return False
        return obj is None or manageable_users(request).filter(pk=obj.pk).exists()

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if request.user.is_superuser:
            return super().get_readonly_fields(request, obj)
        # Admin access and permissions are granted by a superuser only: a manager who could
        # set is_staff could open the admin to anyone in their clinic.
        return (
            "is_superuser",
            "is_staff",
            "groups",
            "user_permissions",
            "last_login",
            "date_joined",
        )

    def _audit_user(self, request: HttpRequest, user: User, action: str, **detail: Any) -> None:
        """One row in each clinic the user belongs to, so every manager of theirs sees it.
        A user with no membership (only a superuser can reach one) gets a row with none."""
        clinics: list[Clinic | None] = [
            m.clinic for m in user.memberships.select_related("clinic")
        ] or [None]
        for clinic in clinics:
            audit(clinic=clinic, user=request.user, action=action, obj=user, via="admin", **detail)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # The password's hash is never written into the trail; its change is named.
        self._audit_user(
            request,
            obj,
            AuditEvent.Action.UPDATE if change else AuditEvent.Action.CREATE,
            fields=sorted(f for f in form.changed_data if f not in {"password1", "password2"}),
        )

    def user_change_password(
        self, request: HttpRequest, id: str, form_url: str = ""
    ) -> HttpResponse:
        response = super().user_change_password(request, id, form_url)
        # The admin redirects after a password it accepted, and re-renders the form otherwise.
        if request.method == "POST" and response.status_code == 302:
            user = self.get_object(request, id)
            if user is not None:
                self._audit_user(request, user, AuditEvent.Action.UPDATE, fields=["password"])
        return response

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self._audit_user(request, obj, AuditEvent.Action.DELETE, label=str(obj)[:200])
        super().delete_model(request, obj)


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
    # A renewal is made on the staff pages, which keep the history; here they are shown only.
    readonly_fields = ("superseded_by", "created_at")


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
