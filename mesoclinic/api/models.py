"""API tokens. Only a hash of each token is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from mesoclinic.accounts.models import Membership


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="api_tokens")
    membership = models.ForeignKey(
        Membership,
        models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        help_text="The clinic and role the token acts in; empty for a user with no membership.",
    )
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)

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
