"""A clinic's payment terms, in the words a patient reads and accepts: the deposit, the
late-cancellation and no-show fees, what a stopped prepaid course gives back, and the insurance
notice."""

from __future__ import annotations

from decimal import Decimal

from mesoclinic.accounts.models import Clinic
from mesoclinic.billing import money
from mesoclinic.billing.models import PaymentPolicy

# The source articles agree that mesotherapy is cosmetic and generally not covered by
# insurance, and that the patient should ask their carrier (SPEC, "insurance": seeds 000, 002,
# 003). The clinic may reword it on its payment policy page.
INSURANCE_NOTICE = (
    "Mesotherapy is a cosmetic treatment, and health insurance generally does not cover it. "
    "Please ask your insurance carrier before you start."
)


def policy_for(clinic: Clinic) -> PaymentPolicy:
    """The clinic's payment policy; a clinic that has not set one has the defaults: no deposit,
    no fees, prepaid sessions not given refunded at the package's price."""
    policy, _ = PaymentPolicy.objects.get_or_create(
        clinic=clinic, defaults={"insurance_notice": INSURANCE_NOTICE}
    )
    policy.clinic = clinic
    return policy


def _hours(hours: int) -> str:
    if hours % 24 == 0:
        days = hours // 24
        return "1 day" if days == 1 else f"{days} days"
    return "1 hour" if hours == 1 else f"{hours} hours"


def terms_text(policy: PaymentPolicy) -> str:
    """The cancellation, no-show and refund terms as whole sentences, with the clinic's own
    additions last."""
    clinic = policy.clinic
    c = clinic.currency
    lines = []
    if policy.late_cancel_fee > 0:
        lines.append(
            f"If you cancel or move a visit less than {_hours(policy.late_cancel_hours)} before "
            f"it starts, {clinic.name} charges a late-cancellation fee of "
            f"{money.words(policy.late_cancel_fee, c)}."
        )
    else:
        lines.append(
            f"Please cancel or move a visit at least {_hours(policy.late_cancel_hours)} before "
            "it starts. There is no fee for a late cancellation."
        )
    if policy.no_show_fee > 0:
        lines.append(
            "If you miss a visit without cancelling it, the clinic charges a no-show fee of "
            f"{money.words(policy.no_show_fee, c)}."
        )
    else:
        lines.append("There is no fee for a missed visit.")
    refund = {
        PaymentPolicy.PackageRefund.PRO_RATA: "If a prepaid course stops early, the sessions "
        "not given are refunded at the package's price per session.",
        PaymentPolicy.PackageRefund.FULL_PRICE: "If a prepaid course stops early, the sessions "
        "given are charged at the price of a single session, and the rest of the package price "
        "is refunded.",
        PaymentPolicy.PackageRefund.NONE: "If a prepaid course stops early, the sessions not "
        "given are not refunded.",
    }[PaymentPolicy.PackageRefund(policy.package_refund)]
    lines.append(refund)
    if policy.extra_terms.strip():
        lines.append(policy.extra_terms.strip())
    return "\n".join(lines)


def deposit_of(policy: PaymentPolicy, total: Decimal) -> Decimal:
    return money.rounded(total * policy.deposit_percent / 100, policy.clinic.currency)
