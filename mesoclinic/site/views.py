"""Each clinic's public site, at /site/<clinic slug>/: no login, no JavaScript, indexable.

Pages: the clinic's home, a page per protocol it offers, the regulatory status of its
products, its practitioners, the before-and-after gallery, questions and answers, and booking
a consultation; with a sitemap and the clinic's colours as a style sheet."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from typing import Any
from urllib.parse import urlsplit

from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from mesoclinic.access import access_marketing_photo
from mesoclinic.accounts.models import AuditEvent, Clinic, audit
from mesoclinic.accounts.throttle import client_ip
from mesoclinic.lib import formats
from mesoclinic.ops.middleware import content_security_policy
from mesoclinic.outcomes import photo_actions
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.protocols.vocab import Area, Indication
from mesoclinic.scheduling.actions import BookingRefused
from mesoclinic.scheduling.models import Appointment
from mesoclinic.site import booking, pages
from mesoclinic.site.actions import do_ask
from mesoclinic.site.forms import BookingForm, QuestionForm
from mesoclinic.site.models import Question

BOOKED_SALT = "site.booked"
logger = logging.getLogger(__name__)


def _clinic(slug: str) -> Clinic:
    return get_object_or_404(Clinic, slug=slug)


def _csp(clinic: Clinic, images: list[str] | None = None) -> str:
    """The site's policy: the product's own, with the hosts of the logo and of `images` (the
    practitioners' photos) allowed as images."""
    origins: list[str] = []
    for url in [clinic.logo_url, *(images or [])]:
        if url:
            parts = urlsplit(url)
            origin = f"{parts.scheme}://{parts.netloc}"
            if origin not in origins:
                origins.append(origin)
    if not origins:
        return content_security_policy()
    return content_security_policy().replace(
        "img-src 'self'", f"img-src 'self' {' '.join(origins)}"
    )


def _page(
    request: HttpRequest,
    clinic: Clinic,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    images: list[str] | None = None,
) -> HttpResponse:
    canonical = request.build_absolute_uri(request.path)
    structured = context.pop("structured", None) or _clinic_data(request, clinic)
    response = render(
        request,
        template,
        {
            "clinic": clinic,
            "canonical": canonical,
            "structured": json.dumps(structured, ensure_ascii=False).replace("</", "<\\/"),
            **context,
        },
        status=status,
    )
    response["Content-Security-Policy"] = _csp(clinic, images)
    return response


def _clinic_data(request: HttpRequest, clinic: Clinic) -> dict[str, Any]:
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "MedicalClinic",
        "name": clinic.name,
        "url": request.build_absolute_uri(reverse("site:home", args=[clinic.slug])),
    }
    if clinic.phone:
        data["telephone"] = clinic.phone
    if clinic.address or clinic.city:
        data["address"] = {
            "@type": "PostalAddress",
            "streetAddress": clinic.address,
            "addressLocality": clinic.city,
        }
    if clinic.logo_url:
        data["logo"] = clinic.logo_url
    return data


@require_GET
def home(request: HttpRequest, slug: str) -> HttpResponse:
    clinic = _clinic(slug)
    protocols = pages.protocols_of(clinic)
    data = _clinic_data(request, clinic)
    data["availableService"] = [
        {
            "@type": "MedicalProcedure",
            "name": p.name,
            "url": request.build_absolute_uri(reverse("site:protocol", args=[slug, p.key])),
        }
        for p in protocols
    ]
    published = Question.objects.filter(clinic=clinic, published=True).exists()
    return _page(
        request,
        clinic,
        "site/home.html",
        {"protocols": protocols, "structured": data, "has_answers": published},
    )


@require_GET
def protocol(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    clinic = _clinic(slug)
    found = ClinicProtocol.current(clinic, key)
    if found is None:
        raise Http404("This clinic does not offer that treatment.")
    parts = pages.protocol_parts(found.document)
    spec = found.spec
    data = {
        "@context": "https://schema.org",
        "@type": "MedicalProcedure",
        "name": found.name,
        "procedureType": "https://schema.org/NoninvasiveProcedure",
        "bodyLocation": ", ".join(str(Area(a).label) for a in spec.areas.v),
        "howPerformed": "Injections into the middle layer of the skin, in a course of sessions.",
        "url": request.build_absolute_uri(request.path),
        "provider": _clinic_data(request, clinic),
    }
    indications = ", ".join(Indication(i).label for i in spec.indications.v).lower()
    return _page(
        request,
        clinic,
        "site/protocol.html",
        {
            "protocol": found,
            "parts": parts,
            "disagreements": pages.disagreements(parts),
            "heading": pages.ARTICLES_HEADING,
            "articles": pages.cited_articles(found.document),
            "description": f"{found.name} at {clinic.name}: {indications}. Sessions, cost, "
            "side effects and aftercare, each with the articles it comes from.",
            "structured": data,
        },
    )


@require_GET
def products(request: HttpRequest, slug: str) -> HttpResponse:
    clinic = _clinic(slug)
    return _page(
        request,
        clinic,
        "site/products.html",
        {"products": pages.product_statuses(clinic)},
    )


@require_GET
def practitioners(request: HttpRequest, slug: str) -> HttpResponse:
    clinic = _clinic(slug)
    today = timezone.now().astimezone(clinic.tz).date()
    found = pages.practitioners(clinic, today)
    return _page(
        request,
        clinic,
        "site/practitioners.html",
        {"practitioners": found},
        images=[p.photo_url for p in found],
    )


@require_GET
def gallery(request: HttpRequest, slug: str) -> HttpResponse:
    clinic = _clinic(slug)
    return _page(request, clinic, "site/gallery.html", {"pairs": pages.gallery_pairs(clinic)})


@require_GET
def gallery_image(request: HttpRequest, slug: str, photo_id: int) -> FileResponse:
    """One gallery photo, only while its patient's marketing consent stands (checked on every
    request) and never cached: a withdrawal removes it at once."""
    clinic = _clinic(slug)
    photo = access_marketing_photo(clinic, photo_id)
    # Each showing of a patient's photo is recorded, as a read of their chart is: the clinic
    # can tell the patient how often their photos were shown.
    photo_actions.audit_view(photo, None, via="site")
    response = photo_actions.image_response(photo, photo_actions.open_image(photo))
    response["Content-Disposition"] = "inline"  # No file name: it would carry an id and a date.
    return response


def questions(request: HttpRequest, slug: str) -> HttpResponse:
    clinic = _clinic(slug)
    form = QuestionForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        if form.is_spam:
            return redirect(reverse("site:questions", args=[slug]) + "?asked=1")
        data = form.cleaned_data
        try:
            do_ask(
                clinic,
                text=data["text"],
                name=data["name"],
                email=data["email"],
                address=client_ip(request),
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                for error in errors:
                    form.add_error(field, error)
        else:
            return redirect(reverse("site:questions", args=[slug]) + "?asked=1")
    answered = Question.objects.filter(clinic=clinic, published=True).order_by("-answered_at")
    return _page(
        request,
        clinic,
        "site/questions.html",
        {"form": form, "answered": answered, "asked": request.GET.get("asked") == "1"},
        status=400 if form.errors else 200,
    )


def book(request: HttpRequest, slug: str) -> HttpResponse:
    clinic = _clinic(slug)
    slots = booking.free_slots(clinic)
    form = BookingForm(
        request.POST if request.method == "POST" else None, clinic=clinic, slots=slots
    )
    form.fields["slot"].error_messages["invalid_choice"] = (
        "That time is no longer free. Please choose another."
    )
    if request.method == "POST" and form.is_valid():
        if form.is_spam:
            return redirect("site:home", slug=slug)
        try:
            appointment = booking.do_book_consultation(
                clinic, form.chosen_slot(), form.cleaned_data, address=client_ip(request)
            )
        except BookingRefused:
            form.add_error("slot", "That time was taken a moment ago. Please choose another.")
        except booking.TooManyBookings:
            phone = f" on {clinic.phone}" if clinic.phone else ""
            form.add_error(
                "slot",
                "Several consultations were booked from this connection today. "
                f"To book another, please call the clinic{phone}.",
            )
        else:
            transaction.on_commit(lambda: _send_confirmation(request, appointment))
            token = signing.dumps(appointment.pk, salt=BOOKED_SALT)
            return redirect("site:booked", slug=slug, token=token)
    return _page(
        request,
        clinic,
        "site/book.html",
        {"form": form, "slots": slots},
        status=400 if form.errors else 200,
    )


def _when(appointment: Appointment) -> str:
    return formats.datetime_text(appointment.starts_at, appointment.clinic)


def _send_confirmation(request: HttpRequest, appointment: Appointment) -> None:
    """The visitor's confirmation: the time, the clinic and how to reach it. No health
    details, as in every email."""
    clinic = appointment.clinic
    context = {
        "clinic": clinic,
        "appointment": appointment,
        "when": _when(appointment),
        "site": request.build_absolute_uri(reverse("site:home", args=[clinic.slug])),
    }
    try:
        send_mail(
            f"Your consultation at {clinic.name}",
            render_to_string("site/booked_email.txt", context),
            None,
            [appointment.patient.email],
        )
    except OSError:
        # The booking stands and its page says so; the clinic sees the visit on Today and the
        # log says the email did not leave.
        logger.exception("The confirmation of consultation %s was not sent", appointment.pk)


@require_GET
def booked(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    clinic = _clinic(slug)
    try:
        appointment_id = signing.loads(token, salt=BOOKED_SALT, max_age=dt.timedelta(days=1))
    except signing.BadSignature:
        raise Http404("This confirmation is no longer available.") from None
    appointment = get_object_or_404(
        Appointment.objects.select_related("clinic"), pk=appointment_id, clinic=clinic
    )
    audit(
        clinic=clinic,
        user=None,
        action=AuditEvent.Action.VIEW,
        obj=appointment,
        patient_id=appointment.patient_id,
        via="site",
    )
    return _page(
        request,
        clinic,
        "site/booked.html",
        {"when": _when(appointment), "cancelled": appointment.status in Appointment.INACTIVE},
    )


@require_GET
def sitemap(request: HttpRequest, slug: str) -> HttpResponse:
    clinic = _clinic(slug)
    names = ["home", "products", "practitioners", "gallery", "questions", "book"]
    urls = [request.build_absolute_uri(reverse(f"site:{n}", args=[slug])) for n in names]
    urls += [
        request.build_absolute_uri(reverse("site:protocol", args=[slug, p.key]))
        for p in pages.protocols_of(clinic)
    ]
    body = render_to_string("site/sitemap.xml", {"urls": urls})
    return HttpResponse(body, content_type="application/xml")


@require_GET
def brand_css(request: HttpRequest, slug: str) -> HttpResponse:
    """The clinic's colour as a style sheet: the pages allow no inline style."""
    clinic = _clinic(slug)
    # Checked again here: a colour saved around the form must not break out of the rule.
    colour = (
        clinic.brand_colour
        if re.fullmatch(r"#[0-9a-fA-F]{3,6}", clinic.brand_colour)
        else "#2f5d8a"
    )
    body = render_to_string("site/brand.css", {"colour": colour})
    return HttpResponse(body, content_type="text/css")
