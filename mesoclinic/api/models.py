"""API tokens. Only a hash of each token is stored.

A token dies with its reason: when its user's password changes, when the user is deactivated,
when the membership it acts in ends, when its holder logs out, and when it expires. A revoked
token keeps its row, with when and why, so the revocation can be looked into later."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models.signals import pre_delete
from django.dispatch import receiver
from django.utils import timezone

from mesoclinic.accounts.models import (
    AuditEvent,
    Membership,
    User,
    audit,
    credentials_changed,
    membership_ended,
)


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="api_tokens")
    # SET_NULL rather than CASCADE: when a membership ends its tokens are revoked (below) and
    # kept, so the record of them outlives the membership.
    membership = models.ForeignKey(
        Membership,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The clinic and role the token acts in; empty for a user with no membership.",
    )
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=60, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    def __str__(self) -> str:
        return f"Token for {self.user} until {self.expires_at:%Y-%m-%d %H:%M}"

    @classmethod
    def issue(cls, user: object, membership: Membership | None) -> tuple[ApiToken, str]:
        raw = secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user,
            membership=membership,
            key_hash=hash_token(raw),
            expires_at=timezone.now() + timedelta(hours=settings.API_TOKEN_TTL_HOURS),
        )
        return token, raw


def do_revoke_tokens(
    tokens: models.QuerySet[ApiToken], *, reason: str, by: Any, via: str = "api"
) -> int:
    """Revoke every active token in `tokens`, and write one audit row for each, in the clinic
    it acted in. Answers how many were revoked."""
    with transaction.atomic():
        found = list(
            tokens.filter(revoked_at__isnull=True)
            .select_related("membership")
            .select_for_update(of=("self",))
        )
        if not found:
            return 0
        ApiToken.objects.filter(pk__in=[t.pk for t in found]).update(
            revoked_at=timezone.now(), revoked_reason=reason
        )
        for token in found:
            audit(
                clinic=token.membership.clinic if token.membership else None,
                user=by,
                action=AuditEvent.Action.REVOKE,
                obj=token,
                via=via,
                reason=reason,
                holder=token.user_id,
            )
    return len(found)


@receiver(credentials_changed, dispatch_uid="api.revoke_tokens_on_credentials")
def _revoke_on_credentials(sender: Any, user: User, reason: str, **kwargs: Any) -> None:
    do_revoke_tokens(ApiToken.objects.filter(user=user), reason=reason, by=None, via="account")


@receiver(pre_delete, sender=Membership, dispatch_uid="api.revoke_tokens_on_membership")
def _revoke_on_membership(sender: Any, instance: Membership, **kwargs: Any) -> None:
    do_revoke_tokens(
        ApiToken.objects.filter(membership=instance),
        reason="membership ended",
        by=None,
        via="account",
    )


@receiver(membership_ended, dispatch_uid="api.revoke_tokens_on_deactivation")
def _revoke_on_deactivation(sender: Any, membership: Membership, **kwargs: Any) -> None:
    _revoke_on_membership(sender, membership)


class IdempotencyRecord(models.Model):
    """The first answer to a creating request sent with an `Idempotency-Key` header, so that a
    client which retries it (after a timeout, a dropped connection) gets that answer again
    instead of a second patient, booking or adverse event. See mesoclinic/api/idempotency.py.

    The row is written in the same transaction as the operation it answers for, so it exists
    exactly when the operation committed."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.CASCADE, related_name="idempotency_records"
    )
    key = models.CharField(max_length=255)
    # A SHA-256 of the method, path, query string and body, to refuse the same key reused for
    # a different request.
    fingerprint = models.CharField(max_length=64)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=2000)
    # 0 while the request runs; only its own transaction ever sees that.
    status = models.PositiveSmallIntegerField(default=0)
    headers = models.JSONField(default=dict)
    body = models.BinaryField(default=b"")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_once_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} with key {self.key!r}: {self.status}"
