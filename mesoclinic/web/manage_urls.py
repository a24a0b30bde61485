"""The manager's pages: formulary and lots, staff and licences, protocols, the audit trail,
imports from CSV files.
Included at /manage/ by web/urls.py, so the names live in the "web" namespace:
{% url 'web:manage_formulary' %}."""

from django.urls import URLPattern, path

from mesoclinic.fhir import everything, smart
from mesoclinic.fhir import imports as fhir_imports
from mesoclinic.web import (
    audit,
    consent_wording,
    imports,
    manage,
    manage_protocols,
    recall_notices,
    setup,
    staff,
)

urlpatterns: list[URLPattern] = [
    path("formulary/", manage.formulary, name="manage_formulary"),
    path("stock/", manage.stock_page, name="manage_stock"),
    path("formulary/products/new/", manage.add_product, name="manage_add_product"),
    path("formulary/products/<int:product_id>/lots/new/", manage.add_lot, name="manage_add_lot"),
    path("lots/<int:lot_id>/", manage.lot_detail, name="manage_lot"),
    path("lots/<int:lot_id>/patients.csv", manage.lot_patients_csv, name="manage_lot_csv"),
    path("lots/<int:lot_id>/exposed.json", everything.lot_exposed, name="manage_lot_exposed"),
    path("lots/<int:lot_id>/stock/", manage.change_stock, name="manage_lot_stock"),
    path("lots/<int:lot_id>/vials/", manage.open_lot_vial, name="manage_lot_open_vial"),
    path("vials/<int:vial_id>/close/", manage.close_lot_vial, name="manage_vial_close"),
    path("lots/<int:lot_id>/notify/", recall_notices.notify_exposed, name="manage_lot_notify"),
    path("clinic/", manage.clinic_settings, name="manage_clinic"),
    path("staff/", staff.staff, name="manage_staff"),
    path("staff/invite/", manage.invite, name="manage_invite"),
    path("staff/<int:membership_id>/", staff.member, name="manage_member"),
    path("staff/<int:membership_id>/photo/", staff.set_photo, name="manage_member_photo"),
    path("staff/<int:membership_id>/role/", staff.change_role, name="manage_change_role"),
    path("staff/<int:membership_id>/deactivate/", staff.deactivate, name="manage_deactivate"),
    path("staff/<int:membership_id>/reactivate/", staff.reactivate, name="manage_reactivate"),
    path("staff/<int:membership_id>/licences/new/", staff.add_licence, name="manage_add_licence"),
    path("licences/<int:licence_id>/renew/", staff.renew_licence, name="manage_renew_licence"),
    path("licences/<int:licence_id>/edit/", staff.edit_licence, name="manage_edit_licence"),
    path("setup/", setup.guide, name="manage_setup"),
    path("hours/", setup.opening_hours, name="manage_opening_hours"),
    path(
        "hours/holidays/<int:holiday_id>/delete/",
        setup.delete_holiday,
        name="manage_delete_holiday",
    ),
    path("rooms/", setup.rooms, name="manage_rooms"),
    path("rooms/<int:room_id>/", setup.room, name="manage_room"),
    path("visit-types/", setup.visit_types, name="manage_visit_types"),
    path("staff/<int:membership_id>/hours/", setup.member_hours, name="manage_member_hours"),
    path(
        "staff/<int:membership_id>/hours/<int:exception_id>/delete/",
        setup.delete_exception,
        name="manage_delete_exception",
    ),
    path("consent/", consent_wording.consent_wording, name="manage_consent"),
    path("audit/", audit.audit_trail, name="manage_audit"),
    path("audit.csv", audit.audit_csv, name="manage_audit_csv"),
    path("protocols/", manage_protocols.protocols, name="manage_protocols"),
    path("protocols/<slug:key>/", manage_protocols.protocol_detail, name="manage_protocol"),
    path("protocols/<slug:key>/edit/", manage_protocols.protocol_edit, name="manage_protocol_edit"),
    path("import/", imports.start, name="import_start"),
    path("import/fhir/", fhir_imports.page, name="import_fhir"),
    path("apps/", smart.manage_apps, name="manage_apps"),
    path("import/<int:job_id>/", imports.job_page, name="import_job"),
    path("import/<int:job_id>/import/", imports.run, name="import_run"),
    path("import/<int:job_id>/report.csv", imports.report_csv, name="import_report_csv"),
]
