"""Consent text: the clinic's wording plus a regulatory section generated from the formulary.

Patient-facing text never calls a product approved unless the formulary says so for that
exact use (SPEC, clinical honesty). Seed 002's claim that the medications are FDA-approved is
never repeated.
"""

from __future__ import annotations

from collections.abc import Iterable

from mesoclinic.accounts.models import Clinic
from mesoclinic.formulary.models import Ingredient, Product
from mesoclinic.patients.models import ConsentTemplate

DEFAULT_BODY = """\
Consent to mesotherapy

I understand that mesotherapy is a course of injections into the middle layer of the skin,
usually 10 to 20 sessions given once a week or every other week, and that results appear
gradually and vary from person to person.

I understand that two test injections are given at least 24 hours before the first session
to check for an allergic reaction, and that treatment goes ahead only if no reaction is seen.

I have been told of the side effects: discomfort, heaviness or burning for some minutes after
the injections; swelling for up to five days; soreness and bruising for some days; minor skin
discoloration; and a small risk of infection, which can appear weeks after a session. I will
tell the clinic at once about a lump, discharge, or a wound that does not heal.

I understand that mesotherapy is cosmetic and that health insurance generally does not cover it.

I have read the regulatory status of each product below, and my questions have been answered.
"""


def current_template(clinic: Clinic) -> ConsentTemplate:
    template = ConsentTemplate.objects.filter(clinic=clinic).order_by("-version").first()
    if template is None:
        template = ConsentTemplate.objects.create(clinic=clinic, version=1, body=DEFAULT_BODY)
    return template


def status_sentence(ingredient: Ingredient, indication: str | None, areas: list[str]) -> str:
    status = ingredient.status_for(indication, areas)
    if status == Ingredient.Status.APPROVED_THIS_USE:
        return f"FDA-approved for this use: {ingredient.approved_use}."
    if status == Ingredient.Status.APPROVED_OTHER_USE:
        detail = f" ({ingredient.approved_use})" if ingredient.approved_use else ""
        return f"FDA-approved for another use{detail}, not for this one: its use here is off-label."
    if status == Ingredient.Status.HOMEOPATHIC:
        return "Homeopathic: no product labelled homeopathic is FDA-approved."
    if status == Ingredient.Status.DEVICE:
        return "Regulated as a medical device, not as a drug."
    return "Not approved by the FDA."


def regulatory_section(
    products: Iterable[Product], indication: str | None, areas: list[str]
) -> str:
    lines = [
        "Regulatory status of the products planned for you (US FDA)",
        "No mesotherapy mixture is approved by the FDA. Each ingredient's own status:",
    ]
    for product in sorted(products, key=lambda p: (p.name, p.pk)):
        lines.append("")
        lines.append(f"{product.name} (supplier: {product.supplier})")
        for component in sorted(product.components.all(), key=lambda c: c.ingredient.name):
            sentence = status_sentence(component.ingredient, indication, areas)
            lines.append(f"  - {component.ingredient.name}: {sentence}")
    return "\n".join(lines)


def render(
    template: ConsentTemplate, products: Iterable[Product], indication: str | None, areas: list[str]
) -> str:
    return template.body.rstrip() + "\n\n" + regulatory_section(products, indication, areas) + "\n"
