"""Limits on guessing passwords, for every way in: the web login, the admin's login, the API
token and the password reset.

Failures are counted per account and per client address in fixed windows (LoginThrottle rows).
When a key reaches its limit it is locked until the lock's end, and every attempt on it is
refused without the password being checked, so a correct password during the lock fails like
a wrong one. A successful sign-in clears the account's count. Each lock writes a `lockout`
audit row.

1. `locked_until(keys)` answers whether any key is locked, before the password is checked.
2. `record_failure(keys)` counts a failure on each key under a row lock, so parallel guesses
   are all counted, and sets the lock when a limit is reached.
3. `record_success(username)` forgets the account's failures.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, Clinic, LoginThrottle, User, audit
from mesoclinic.patients.models import Patient


def client_ip(request: HttpRequest) -> str:
    """The caller's address as Django sees it. Behind a trusted proxy, the serving settings
    rewrite REMOTE_ADDR from X-Forwarded-For before any view runs, so this is the one place
    to read it."""
    return str(request.META.get("REMOTE_ADDR") or "unknown")


@dataclass(frozen=True)
class Key:
    """One thing failures are counted against, and how many it may have in a window."""

    key: str
    limit: int

    @classmethod
    def account(cls, username: str) -> Key:
        return cls(f"account:{username.strip().lower()}"[:300], settings.LOGIN_FAILURE_LIMIT)

    @classmethod
    def address(cls, ip: str) -> Key:
        return cls(f"address:{ip}"[:300], settings.LOGIN_ADDRESS_FAILURE_LIMIT)

    @classmethod
    def reset(cls, email: str) -> Key:
        return cls(f"reset:{email.strip().lower()}"[:300], settings.LOGIN_FAILURE_LIMIT)


def keys_for(request: HttpRequest, username: str) -> list[Key]:
    return [Key.account(username), Key.address(client_ip(request))]


def _window() -> dt.timedelta:
    return dt.timedelta(minutes=settings.LOGIN_FAILURE_WINDOW_MINUTES)


def _lockout() -> dt.timedelta:
    return dt.timedelta(minutes=settings.LOGIN_LOCKOUT_MINUTES)


def locked_until(keys: list[Key]) -> dt.datetime | None:
    """The latest end of a lock on any of `keys`, or None if none is locked now."""
    now = timezone.now()
    ends = [
        end
        for end in LoginThrottle.objects.filter(
            key__in=[k.key for k in keys], locked_until__gt=now
        ).values_list("locked_until", flat=True)
        if end is not None
    ]
    return max(ends, default=None)


def record_failure(keys: list[Key], *, username: str, ip: str, path: str) -> dt.datetime | None:
    """Count one failure on each key; answer the end of the lock if this failure set one.

    The row is created if missing (an insert that ignores a conflict, so two first failures
    in parallel do not collide) and then updated under a row lock. On SQLite the whole
    transaction holds the write lock (BEGIN IMMEDIATE), which serialises it the same way."""
    now = timezone.now()
    locked: dt.datetime | None = None
    with transaction.atomic():
        LoginThrottle.objects.bulk_create(
            [LoginThrottle(key=k.key, window_started_at=now) for k in keys],
            ignore_conflicts=True,
        )
        rows = {
            r.key: r
            for r in LoginThrottle.objects.select_for_update().filter(key__in=[k.key for k in keys])
        }
        for k in keys:
            row = rows[k.key]
            if row.locked_until is not None and row.locked_until > now:
                # Attempts during a lock are refused before they get here; one that raced
                # past the check is refused too, and does not extend the lock.
                locked = max(locked or row.locked_until, row.locked_until)
                continue
            if now - row.window_started_at >= _window() or row.locked_until is not None:
                row.failures, row.window_started_at, row.locked_until = 0, now, None
            row.failures += 1
            if row.failures >= k.limit:
                row.locked_until = now + _lockout()
                locked = max(locked or row.locked_until, row.locked_until)
                _audit_lockout(k, row, username=username, ip=ip, path=path)
            row.save(update_fields=["failures", "window_started_at", "locked_until"])
    return locked


def record_success(username: str) -> None:
    """A right password (outside a lock) forgets the account's failures. The address keeps
    its count: one good account must not clear the way for guessing at others."""
    LoginThrottle.objects.filter(key=Key.account(username).key).delete()


def _audit_lockout(key: Key, row: LoginThrottle, *, username: str, ip: str, path: str) -> None:
    """One audit row per clinic the account belongs to (a staff member's clinics, or a
    patient's own clinic for their portal login), so each clinic's manager sees the lockout in
    their audit viewer; a lock on an address, or on a name that is no account, is recorded
    without a clinic."""
    user = _account(username)
    clinics: list[Clinic | None] = []
    if user is not None and key.key.startswith(("account:", "reset:")):
        clinics = [m.clinic for m in user.memberships.select_related("clinic")]
        clinics += [p.clinic for p in Patient.objects.filter(user=user).select_related("clinic")]
    until = row.locked_until.isoformat() if row.locked_until else None
    for clinic in clinics or [None]:
        # Nobody signed in did this, so the row names no user; the account is its object.
        audit(
            clinic=clinic,
            user=None,
            action=AuditEvent.Action.LOCKOUT,
            obj=user,
            object_type="" if user is not None else "accounts.User",
            via="login",
            key=key.key.split(":", 1)[0],
            username=username[:150],
            address=ip,
            path=path,
            failures=row.failures,
            until=until,
        )


def _account(name: str) -> User | None:
    """The account a sign-in name (or a reset's email) names, if exactly one."""
    if not name:
        return None
    field = (
        "email__iexact"
        if "@" in name and not User.objects.filter(username__iexact=name).exists()
        else "username__iexact"
    )
    found = list(User.objects.filter(**{field: name})[:2])
    return found[0] if len(found) == 1 else None


def zone_for(username: str) -> Any:
    """The time zone to say a lock's end in: the account's clinic's, else the only clinic's,
    else UTC."""
    user = _account(username)
    membership = user.memberships.select_related("clinic").first() if user else None
    if membership is not None:
        return membership.clinic.tz
    clinics = list(Clinic.objects.all()[:2])
    return clinics[0].tz if len(clinics) == 1 else dt.UTC


def try_again_message(until: dt.datetime, username: str = "") -> str:
    zone = zone_for(username)
    local = until.astimezone(zone)
    suffix = " UTC" if zone is dt.UTC else ""
    return f"Too many attempts. Try again at {local:%H:%M}{suffix}."


def retry_after_seconds(until: dt.datetime) -> int:
    """Whole seconds until the lock ends, never less than one."""
    return max(1, int((until - timezone.now()).total_seconds() + 0.999))
