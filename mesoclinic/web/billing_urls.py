"""The money pages (web/billing.py), under the web app's namespace."""

from django.urls import path

from mesoclinic.web import billing, documents

urlpatterns = [
    path("patients/<int:patient_id>/account/", billing.account, name="account"),
    path("patients/<int:patient_id>/packages/", billing.sell_package, name="sell_package"),
    path("invoices/<int:invoice_id>/", billing.invoice_detail, name="invoice"),
    path("invoices/<int:invoice_id>.pdf", documents.invoice_pdf, name="invoice_pdf"),
    path("invoices/<int:invoice_id>/email/", billing.email_invoice, name="email_invoice"),
    path("invoices/<int:invoice_id>/payments/", billing.take_payment, name="take_payment"),
    path("invoices/<int:invoice_id>/credit-notes/", billing.credit_note, name="credit_note"),
    path("payments/<int:payment_id>/refunds/", billing.refund, name="refund"),
    path("manage/prices/", billing.price_list, name="price_list"),
    path("manage/prices/<int:price_id>/", billing.edit_price, name="edit_price"),
    path("manage/daily-close/", billing.daily_close, name="daily_close"),
    path("manage/outstanding/", billing.outstanding, name="outstanding"),
]
