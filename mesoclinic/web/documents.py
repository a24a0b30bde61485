"""Printable documents as PDF: a course's plan and quote, a signed consent, a session's
aftercare sheet, and an invoice or a credit note. Each is fetched for the caller's clinic only
(another clinic's record is a 404) and is audited as an export from the patient's record. The
clinical ones may be read by every staff role, an invoice by the staff who handle money. The
PDFs themselves are built in web/pdf.py."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_safe

from mesoclinic.access import (
    MONEY,
    access_consent,
    access_course,
    access_invoice,
    access_quote,
    access_session,
)
from mesoclinic.accounts.models import AuditEvent, Clinic, audit
from mesoclinic.billing import actions as billing
from mesoclinic.billing import money
from mesoclinic.billing.models import Invoice, Quote
from mesoclinic.courses.models import Course, Session
from mesoclinic.patients.models import Consent
from mesoclinic.protocols.vocab import Area, Indication
from mesoclinic.scheduling import planning
from mesoclinic.web import pdf
from mesoclinic.web.context import ALL_STAFF, caller
from mesoclinic.web.session import call_line


def _letterhead(clinic: Clinic, title: str) -> pdf.Letterhead:
    return pdf.Letterhead(
        clinic=clinic.name,
        city=clinic.city,
        title=title,
        generated_at=clinic.local(timezone.now()),
        page_size=pdf.page_size_for(clinic.timezone),
    )


def _label(choices: type[models.TextChoices], value: str) -> str:
    """A stored key in words; a key the vocabulary no longer has is shown as it is."""
    return str(dict(choices.choices).get(value, value))


def _pdf(
    request: HttpRequest,
    content: bytes,
    filename: str,
    *,
    clinic: Clinic,
    obj: models.Model,
    patient_id: int,
    document: str,
) -> HttpResponse:
    audit(
        clinic=clinic,
        user=request.user,
        action=AuditEvent.Action.EXPORT,
        obj=obj,
        patient_id=patient_id,
        via="web",
        document=document,
    )
    response = HttpResponse(content, content_type="application/pdf")
    # The filename names the record, not the patient, since it lands in a downloads folder;
    # it is made of a word and a number, so it needs no quoting.
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    # A chart document must not linger in a shared browser's or a proxy's cache.
    add_never_cache_headers(response)
    return response


@login_required
@require_safe
def course_plan_pdf(request: HttpRequest, course_id: int) -> HttpResponse:
    return course_plan_document(request, access_course(caller(request), course_id, ALL_STAFF))


def course_plan_content(course: Course) -> bytes:
    """The plan's PDF as bytes (for the page below and the patient's copy, fhir/everything)."""
    return pdf.course_plan_pdf(
        _letterhead(course.clinic, "Course plan and quote"),
        patient=f"{course.patient.first_name} {course.patient.last_name}",
        protocol=course.protocol.name,
        protocol_version=course.protocol.version,
        status=course.get_status_display(),
        areas=[_label(Area, a) for a in course.areas],
        cadence_days=course.cadence_days,
        plan=course.plan(),
        progress=course.progress(),
        booked=planning.booked_visits(course),
    )


def course_plan_document(request: HttpRequest, course: Course) -> HttpResponse:
    """The plan's PDF for a course the caller was given by the access layer (staff here, the
    patient themself in the portal)."""
    return _pdf(
        request,
        course_plan_content(course),
        f"course-{course.pk}-plan.pdf",
        clinic=course.clinic,
        obj=course,
        patient_id=course.patient_id,
        document="course_plan",
    )


@login_required
@require_safe
def consent_pdf(request: HttpRequest, consent_id: int) -> HttpResponse:
    return consent_document(request, access_consent(caller(request), consent_id, ALL_STAFF))


def consent_content(consent: Consent) -> bytes:
    """The signed consent's PDF as bytes."""
    patient, clinic = consent.patient, consent.patient.clinic
    witness = consent.witnessed_by
    return pdf.consent_pdf(
        _letterhead(clinic, "Signed consent"),
        patient=f"{patient.first_name} {patient.last_name}",
        born=patient.date_of_birth,
        text=consent.text,
        text_sha256=consent.text_sha256,
        template_version=consent.template.version,
        signed_name=consent.signed_name,
        signed_at=clinic.local(consent.signed_at),
        method=consent.get_method_display(),
        signature=consent.signature,
        witnessed_by=witness.display_name if witness else "",
        indication=_label(Indication, consent.indication) if consent.indication else "",
        areas=[_label(Area, a) for a in consent.areas],
    )


def consent_document(request: HttpRequest, consent: Consent) -> HttpResponse:
    """The signed consent's PDF, for a consent the access layer gave the caller."""
    return _pdf(
        request,
        consent_content(consent),
        f"consent-{consent.pk}.pdf",
        clinic=consent.patient.clinic,
        obj=consent,
        patient_id=consent.patient_id,
        document="consent",
    )


@login_required
@require_safe
def aftercare_pdf(request: HttpRequest, session_id: int) -> HttpResponse:
    return aftercare_document(request, access_session(caller(request), session_id, ALL_STAFF))


def aftercare_content(session: Session) -> bytes:
    """The session's aftercare sheet as bytes."""
    course = session.course
    return pdf.aftercare_pdf(
        _letterhead(course.clinic, "Aftercare"),
        first_name=course.patient.first_name,
        performed_at=course.clinic.local(session.performed_at),
        session_number=session.number,
        protocol=course.protocol.name,
        items=session.aftercare(),
        call_line=call_line(course.clinic),
    )


def aftercare_document(request: HttpRequest, session: Session) -> HttpResponse:
    """The session's aftercare sheet, for a session the access layer gave the caller."""
    course = session.course
    return _pdf(
        request,
        aftercare_content(session),
        f"session-{session.pk}-aftercare.pdf",
        clinic=course.clinic,
        obj=session,
        patient_id=course.patient_id,
        document="aftercare",
    )


def progress_content(course: Course) -> bytes:
    """A course's progress report as bytes (web/outcomes.py serves it)."""
    from mesoclinic.outcomes import progress

    return pdf.progress_pdf(
        _letterhead(course.clinic, "Progress report"),
        patient=f"{course.patient.first_name} {course.patient.last_name}",
        protocol=course.protocol.name,
        protocol_version=course.protocol.version,
        progress=progress.course_progress(course),
    )


def invoice_content(invoice: Invoice) -> bytes:
    """An invoice or a credit note as a PDF, every amount in its currency."""
    c, clinic = invoice.currency, invoice.clinic
    title = f"{invoice.get_kind_display()} {invoice.number}"
    totals = [
        ("Total before tax", money.words(invoice.subtotal, c)),
        ("Tax", money.words(invoice.tax, c)),
        ("Total", money.words(invoice.total, c)),
    ]
    if invoice.kind == Invoice.Kind.INVOICE:
        figures = billing.amounts(invoice)
        totals += [
            ("Paid", money.words(figures["paid"], c)),
            ("Credited", money.words(figures["credited"], c)),
            ("Due", money.words(figures["due"], c)),
        ]
    issued = clinic.local(invoice.issued_at)
    return pdf.invoice_pdf(
        _letterhead(clinic, title),
        title=title,
        issued=f"{issued.day} {issued:%B %Y}",
        patient=str(invoice.patient),
        corrects=f"It corrects invoice {invoice.credits.number}." if invoice.credits else "",
        lines=[
            pdf.InvoiceLineText(
                line.description,
                line.quantity,
                money.words(line.unit_amount, c),
                f"{money.percent(line.tax_rate)} %",
                money.words(line.net, c),
            )
            for line in invoice.lines.all()
        ],
        totals=totals,
        note=invoice.note,
    )


@login_required
@require_safe
def invoice_pdf(request: HttpRequest, invoice_id: int) -> HttpResponse:
    invoice = access_invoice(caller(request), invoice_id, MONEY)
    return _pdf(
        request,
        invoice_content(invoice),
        f"invoice-{invoice.number}.pdf",
        clinic=invoice.clinic,
        obj=invoice,
        patient_id=invoice.patient_id,
        document="invoice",
    )


def quote_content(quote: Quote) -> bytes:
    """A quote as the patient reads it and, once accepted, its signature."""
    clinic = quote.clinic
    accepted: list[tuple[str, str]] = []
    if quote.status == Quote.Status.ACCEPTED and quote.accepted_at:
        at = clinic.local(quote.accepted_at)
        where = "In the portal" if quote.accepted_in == "portal" else "In the clinic"
        witness = quote.witnessed_by.display_name if quote.witnessed_by else "—"
        accepted = [
            ("Signed by", quote.signed_name),
            ("Signed at", f"{pdf.moment(at)} ({at.tzinfo})"),
            ("Where", where),
            ("Method", quote.get_method_display()),
            ("Witnessed by", witness),
        ]
    elif quote.status == Quote.Status.WITHDRAWN:
        accepted = [("State", "Withdrawn: this quote can no longer be accepted.")]
    title = f"Quote {quote.pk}"
    return pdf.quote_pdf(
        _letterhead(clinic, title),
        title=title,
        text=quote.text,
        text_sha256=quote.text_sha256,
        accepted=accepted,
        signature=quote.signature if accepted and quote.signed_name else None,
    )


def quote_document(request: HttpRequest, quote: Quote) -> HttpResponse:
    return _pdf(
        request,
        quote_content(quote),
        f"quote-{quote.pk}.pdf",
        clinic=quote.clinic,
        obj=quote,
        patient_id=quote.patient_id,
        document="quote",
    )


@login_required
@require_safe
def quote_pdf(request: HttpRequest, quote_id: int) -> HttpResponse:
    return quote_document(request, access_quote(caller(request), quote_id, MONEY))
