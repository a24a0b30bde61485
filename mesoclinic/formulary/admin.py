from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from mesoclinic.accounts.admin import ClinicScopedAdmin, ClinicScopedInline, managed_clinic_ids
from mesoclinic.formulary.models import Ingredient, Lot, Product, ProductIngredient


@admin.register(Ingredient)
class IngredientAdmin(ClinicScopedAdmin):
    list_display = ("name", "klass", "fda_status", "clinic")
    list_filter = ("klass", "fda_status")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Ingredient]:
        qs = admin.ModelAdmin.get_queryset(self, request)
        if request.user.is_superuser:
            return qs
        return qs.filter(Q(clinic=None) | Q(clinic__in=managed_clinic_ids(request)))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The shipped reference ingredients and their regulatory status change only by release.
        if obj is not None and obj.clinic_id is None:
            return bool(request.user.is_superuser)
        return super().has_change_permission(request, obj)


class ComponentInline(ClinicScopedInline):
    model = ProductIngredient
    extra = 1


@admin.register(Product)
class ProductAdmin(ClinicScopedAdmin):
    list_display = ("name", "supplier", "vial", "active", "clinic")
    inlines = [ComponentInline]


@admin.register(Lot)
class LotAdmin(ClinicScopedAdmin):
    clinic_path = "product__clinic"
    list_display = ("product", "lot_number", "expires_on", "received_on", "recalled")
    list_filter = ("recalled",)
    search_fields = ("lot_number",)
    readonly_fields = ("recalled_at", "recalled_by")
