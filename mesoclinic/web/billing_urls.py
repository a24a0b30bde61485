"""The money pages (web/billing.py), under the web app's namespace."""

from django.urls import path

from mesoclinic.web import billing, documents, quotes, revenue

urlpatterns = [
    path("patients/<int:patient_id>/account/", billing.account, name="account"),
    path("patients/<int:patient_id>/packages/", billing.sell_package, name="sell_package"),
    path("invoices/<int:invoice_id>/", billing.invoice_detail, name="invoice"),
    path("invoices/<int:invoice_id>.pdf", documents.invoice_pdf, name="invoice_pdf"),
    path("invoices/<int:invoice_id>/email/", billing.email_invoice, name="email_invoice"),
    path("invoices/<int:invoice_id>/payments/", billing.take_payment, name="take_payment"),
    path("invoices/<int:invoice_id>/credit-notes/", billing.credit_note, name="credit_note"),
    path("payments/<int:payment_id>/refunds/", billing.refund, name="refund"),
    path("patients/<int:patient_id>/quotes/", quotes.new_quote, name="new_quote"),
    path("quotes/<int:quote_id>/", quotes.quote_detail, name="quote"),
    path("quotes/<int:quote_id>.pdf", documents.quote_pdf, name="quote_pdf"),
    path("quotes/<int:quote_id>/withdraw/", quotes.withdraw_quote, name="withdraw_quote"),
    path("invoices/<int:invoice_id>/pay-online/", quotes.pay_online, name="pay_online"),
    path("payments/online/return/", quotes.checkout_return, name="checkout_return"),
    path("payments/stripe/<int:clinic_id>/webhook/", quotes.stripe_webhook, name="stripe_webhook"),
    path("visits/<int:appointment_id>/fee/", quotes.charge_fee, name="charge_fee"),
    path("packages/<int:package_id>/settle/", quotes.settle_package, name="settle_package"),
    path("manage/payment-policy/", quotes.payment_policy, name="payment_policy"),
    path("manage/prices/", billing.price_list, name="price_list"),
    path("manage/prices/<int:price_id>/", billing.edit_price, name="edit_price"),
    path("manage/daily-close/", billing.daily_close, name="daily_close"),
    path("manage/outstanding/", billing.outstanding, name="outstanding"),
    path("manage/revenue/", revenue.revenue, name="revenue"),
]
