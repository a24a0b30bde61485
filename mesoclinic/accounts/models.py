"""Users, clinics, roles, practitioner licences and the audit trail."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import connections, models, router, transaction
from django.dispatch import Signal
from django.utils.timezone import now

# Sent when a user's credentials stop being a reason to trust what they hold: their password
# changed or they were deactivated (`user`, `reason`). The apps that issue tokens and feed
# addresses (api, scheduling) listen and revoke them, as they listen to Membership's
# pre_delete for a membership that ends; accounts knows nothing of either, so the
# dependencies keep pointing one way.
credentials_changed = Signal()
# Sent when a manager deactivates a membership (`membership`): its access ends like a deleted
# membership's, so the same listeners revoke its tokens and calendar addresses.
membership_ended = Signal()


def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"{value!r} is not an IANA time zone such as Europe/Paris.") from exc


class User(AbstractUser):
    """A person who signs in: staff of one or more clinics, or (later) a patient."""

    def membership_in(self, clinic: Clinic) -> Membership | None:
        return self.memberships.filter(clinic=clinic).first()

    def save(self, *args: Any, **kwargs: Any) -> None:
        # AbstractBaseUser keeps the new raw password in `_password` from set_password() until
        # the save, so a save that carries one is a password change, whichever path made it
        # (the admin, a password reset, the change form or a shell).
        adding = self._state.adding
        password_changed = getattr(self, "_password", None) is not None
        super().save(*args, **kwargs)
        if adding:
            return
        if password_changed:
            credentials_changed.send(sender=type(self), user=self, reason="password changed")
        if not self.is_active:
            credentials_changed.send(sender=type(self), user=self, reason="deactivated")

    @property
    def display_name(self) -> str:
        """The full name, or the username when no name is recorded."""
        return str(self.get_full_name() or self.get_username())


def acting(user: Any) -> User | None:
    """The signed-in user a record should name, or None for an anonymous or system caller."""
    return user if getattr(user, "is_authenticated", False) else None


# A telephone number as people write it: patients' and the clinic's.
phone_validator = RegexValidator(
    r"^\+?[0-9 ()\-.]{6,20}$", "Enter a phone number of 6 to 20 digits, spaces or + ( ) - ."
)


# A colour as the public site's style sheet writes it: #rgb or #rrggbb.
colour_validator = RegexValidator(
    r"^#(?:[0-9a-fA-F]{3}){1,2}$",
    "Enter a colour as # and six hexadecimal digits, such as #2f5d8a.",
)


def unique_slug(name: str, taken: Any) -> str:
    """A web address part made from the clinic's name, with -2, -3... when `taken(slug)`."""
    from django.utils.text import slugify

    base = (slugify(name) or "clinic")[:50].strip("-") or "clinic"
    slug, n = base, 1
    while taken(slug):
        n += 1
        slug = f"{base}-{n}"
    return slug


class Clinic(models.Model):
    class DateFormat(models.TextChoices):
        DAY_MONTH_YEAR = "d/m/Y", "31/12/2026"
        MONTH_DAY_YEAR = "m/d/Y", "12/31/2026"
        ISO = "Y-m-d", "2026-12-31"
        DAY_MONTH_NAME = "j M Y", "31 Dec 2026"

    class TimeFormat(models.TextChoices):
        H24 = "24h", "24-hour clock (14:30)"
        H12 = "12h", "12-hour clock (2:30 pm)"

    class Locale(models.TextChoices):
        EN_GB = "en-GB", "English (United Kingdom)"
        EN_US = "en-US", "English (United States)"
        EN_CA = "en-CA", "English (Canada)"
        EN_AU = "en-AU", "English (Australia)"
        EN_IE = "en-IE", "English (Ireland)"

    name = models.CharField(max_length=200)
    address = models.TextField(
        blank=True, help_text="The street address patients come to, printed on their documents."
    )
    city = models.CharField(max_length=120, blank=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    currency = models.CharField(max_length=3, default="USD", help_text="ISO 4217 code")
    phone = models.CharField(
        max_length=30,
        blank=True,
        validators=[phone_validator],
        help_text="The number patients call, printed in the emails and pages they receive.",
    )
    baseline_required = models.BooleanField(
        default=True,
        help_text="Refuse session 1 of a course until a baseline measurement is recorded.",
    )
    date_format = models.CharField(
        max_length=8, choices=DateFormat.choices, default=DateFormat.DAY_MONTH_NAME
    )
    time_format = models.CharField(max_length=3, choices=TimeFormat.choices, default=TimeFormat.H24)
    locale = models.CharField(max_length=8, choices=Locale.choices, default=Locale.EN_US)
    # Set by `mesoclinic init` and the first-run page: the managers are led to the setup guide
    # until they say the clinic is set up. A clinic made any other way starts set up.
    setup_pending = models.BooleanField(default=False)
    # Text messages wait out these hours, in the clinic's time zone (notify/logic.py). A start
    # later than the end means the quiet runs over midnight, as it usually does.
    quiet_from = models.TimeField(
        "quiet hours from",
        default=dt.time(20, 0),
        help_text="No text message is sent to a patient from this time…",
    )
    quiet_until = models.TimeField(
        "quiet hours until",
        default=dt.time(9, 0),
        help_text="…until this time the next morning; a text due meanwhile waits.",
    )
    # The clinic's policy for its patients' own changes in the portal (staff are not bound by
    # it): a visit may be moved or cancelled online up to this many hours before it starts.
    patient_change_hours = models.PositiveSmallIntegerField(
        "online changes up to (hours before the visit)",
        default=24,
        help_text="Patients may move or cancel a visit in the portal up to this many hours "
        "before it starts; later, they call the clinic.",
    )
    created_at = models.DateTimeField(default=now)
    # The public site (mesoclinic/site/): its address /site/<slug>/, its colour and logo.
    slug = models.SlugField(
        max_length=60,
        unique=True,
        help_text="The clinic's public pages are at /site/<this>/. Letters, digits and hyphens.",
    )
    brand_colour = models.CharField(
        max_length=7,
        default="#2f5d8a",
        validators=[colour_validator],
        help_text="The colour of the public pages' headings and buttons, such as #2f5d8a.",
    )
    logo_url = models.URLField(
        blank=True,
        max_length=500,
        help_text="The address of the clinic's logo, beginning with https://. Leave empty "
        "for none.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        # A clinic gets its public address from its name when it is made; the manager may
        # change it on the clinic details page.
        if not self.slug:
            others = Clinic.objects.exclude(pk=self.pk) if self.pk else Clinic.objects.all()
            self.slug = unique_slug(self.name, lambda s: others.filter(slug=s).exists())
        super().save(*args, **kwargs)

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def local(self, moment: dt.datetime) -> dt.datetime:
        return moment.astimezone(self.tz)


class ActiveMembershipManager(models.Manager["Membership"]):
    """Memberships that give access: not deactivated. The default manager, so every check of
    "is this user a member of this clinic" (the access layer, the API's sign-in, calendar
    feeds, the booking pickers) leaves a deactivated member out without asking."""

    def get_queryset(self) -> models.QuerySet[Membership]:
        return super().get_queryset().filter(deactivated_at__isnull=True)


class EveryMembershipManager(models.Manager["Membership"]):
    """Every membership, deactivated ones too: for the staff pages and the history."""


class Membership(models.Model):
    """A user's role in one clinic. Tenancy and permission checks start here.

    A manager may deactivate a membership (accounts/staff.py): the row stays, with who ended
    it and when, so it can be reactivated and the staff page still lists it; `objects` no
    longer returns it, `every` does."""

    class Role(models.TextChoices):
        MANAGER = "manager", "Clinic manager"
        PRACTITIONER = "practitioner", "Practitioner"
        FRONT_DESK = "front_desk", "Front desk"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="memberships")
    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(default=now)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    deactivated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # The practitioner's photo on the clinic's public site: an https address, as the logo is.
    photo_url = models.URLField(
        "photo address",
        max_length=500,
        blank=True,
        help_text="An https address of the practitioner's photo, shown on the public site.",
    )

    objects = ActiveMembershipManager()
    every = EveryMembershipManager()

    class Meta:
        base_manager_name = "every"
        constraints = [
            models.UniqueConstraint(fields=["user", "clinic"], name="one_membership_per_clinic"),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.get_role_display()} · {self.clinic}"

    @property
    def is_clinical(self) -> bool:
        return self.role in {self.Role.MANAGER, self.Role.PRACTITIONER}

    @property
    def is_active(self) -> bool:
        return self.deactivated_at is None


class PractitionerLicence(models.Model):
    """A licence to practise. The seeds tell patients to check their practitioner's credentials;
    an expired licence blocks that practitioner from giving sessions (courses/rules.py)."""

    class Kind(models.TextChoices):
        PHYSICIAN = "physician", "Physician (MD/DO)"
        NURSE_PRACTITIONER = "nurse_practitioner", "Nurse practitioner"
        PHYSICIAN_ASSISTANT = "physician_assistant", "Physician assistant"
        REGISTERED_NURSE = "registered_nurse", "Registered nurse"
        OTHER = "other", "Other"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="licences")
    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="licences")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    number = models.CharField(max_length=60)
    jurisdiction = models.CharField(max_length=120)
    expires_on = models.DateField()
    lookup_url = models.URLField(
        "licensing board's lookup",
        blank=True,
        max_length=500,
        help_text="The page of the licensing board where anyone can check this licence.",
    )
    # A renewal is a new row; the one it replaces points to it and stays as history.
    superseded_by = models.OneToOneField(
        "self", models.SET_NULL, null=True, blank=True, related_name="supersedes"
    )
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-expires_on"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.number} ({self.jurisdiction})"

    @property
    def is_current(self) -> bool:
        return self.superseded_by_id is None

    def is_valid_on(self, day: dt.date) -> bool:
        return day <= self.expires_on


class LicenceWarning(models.Model):
    """One email warning that a licence expires soon, 60, 30 or 7 days before, to the clinic's
    managers and the practitioner. Sent through the same kind of outbox as reminders
    (lib/outbox.py). The unique constraint on (licence, threshold) makes each warning go once
    however many workers plan it; a renewal is a new licence, so its warnings start afresh."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="licence_warnings")
    licence = models.ForeignKey(PractitionerLicence, models.CASCADE, related_name="warnings")
    threshold = models.PositiveSmallIntegerField(help_text="Days before expiry: 60, 30 or 7.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    skip_reason = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=now)
    claim_token = models.CharField(max_length=32, blank=True)
    claimed_by = models.CharField(max_length=100, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    sent_to = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="licence_warning_status_next")
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["licence", "threshold"], name="one_licence_warning_per_threshold"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.threshold}-day warning for licence {self.licence_id} ({self.status})"


class AuditEvent(models.Model):
    """Who read or changed what, and when. Written by every chart read and every change,
    and by every override of a safety gate."""

    class Action(models.TextChoices):
        VIEW = "view", "Viewed"
        CREATE = "create", "Created"
        UPDATE = "update", "Updated"
        OVERRIDE = "override", "Overrode a safety gate"
        REFUSE = "refuse", "Refused an unsafe action"
        EXPORT = "export", "Exported"
        DELETE = "delete", "Deleted"
        REVOKE = "revoke", "Revoked a token or calendar address"
        LOCKOUT = "lockout", "Locked out after repeated failed sign-ins"
        HANDOVER = "handover", "Handed the tablet to a patient"
        TAKEBACK = "takeback", "Took the tablet back with the PIN"
        PIN_FAILED = "pin_failed", "Entered a wrong tablet PIN"

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="audit_events", null=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True)
    action = models.CharField(max_length=20, choices=Action.choices)
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=60, blank=True)
    patient_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    detail = models.JSONField(default=dict, blank=True)
    via = models.CharField(
        max_length=20, default="api", help_text="api, admin, web, command, login"
    )
    at = models.DateTimeField(default=now, db_index=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["clinic", "at"], name="audit_clinic_at")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.user} {self.action} {self.object_type}"


def audit(
    *,
    clinic: Clinic | None,
    user: Any,
    action: str,
    obj: models.Model | None = None,
    object_type: str = "",
    patient_id: int | None = None,
    via: str = "api",
    **detail: Any,
) -> AuditEvent:
    """Write one audit row. `obj` fills the type and id; `patient_id` ties it to a chart."""
    if obj is not None:
        object_type = object_type or obj._meta.label
        object_id = str(obj.pk)
    else:
        object_id = ""
    with _trail_commit(action):
        return AuditEvent.objects.create(
            clinic=clinic,
            user=acting(user),
            action=action,
            object_type=object_type,
            object_id=object_id,
            patient_id=patient_id,
            detail=detail,
            via=via,
        )


def audit_many(
    *,
    clinic: Clinic | None,
    user: Any,
    action: str,
    via: str,
    entries: list[tuple[models.Model, int | None, dict[str, Any]]],
) -> None:
    """One audit row per (object, patient id, detail), written in one statement: booking a
    course writes thirteen at once, and a list page one per patient it shows.

    Every list page writes these on every load, so the rows go in as plain values through one
    prepared INSERT rather than as model instances: the fields shared by every row (clinic,
    user, action, channel, time) are prepared for the database once, and a detail shared by
    several rows (a page's, usually the same dict) is encoded once."""
    if not entries:
        return
    connection = connections[router.db_for_write(AuditEvent)]
    meta = AuditEvent._meta
    detail_field = meta.get_field("detail")
    who = acting(user)
    shared = {
        "clinic_id": clinic.pk if clinic is not None else None,
        "user_id": who.pk if who is not None else None,
        "action": action,
        "via": via,
        "at": meta.get_field("at").get_db_prep_save(now(), connection),
    }
    encoded: dict[int, Any] = {}
    rows = []
    for obj, patient_id, detail in entries:
        if id(detail) not in encoded:
            encoded[id(detail)] = detail_field.get_db_prep_save(detail, connection)
        rows.append(
            (
                *shared.values(),
                obj._meta.label,
                str(obj.pk),
                patient_id,
                encoded[id(detail)],
            )
        )
    columns = [*shared, "object_type", "object_id", "patient_id", "detail"]
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    with _trail_commit(action), connection.cursor() as cursor:
        cursor.executemany(sql, rows)


@contextmanager
def _trail_commit(action: str) -> Iterator[None]:
    """Commit the audit row of a read without waiting for the disk; any other row as usual.

    A page that shows patient data writes its audit row and commits it before the answer
    leaves, on every load. Waiting for the disk (fsync) took 5–10 ms of each such request, and
    on SQLite it holds the one write lock meanwhile, so every other request's write queues
    behind it. The row is still committed before the page is answered: SQLite's WAL with
    synchronous=NORMAL, and PostgreSQL's synchronous_commit=off, keep every committed row when
    the application's process dies (tests/test_serve.py kills the server with
    SIGKILL). What they do not promise is the last moment's rows if the machine itself loses
    power; the next change the clinic makes, or SQLite's next checkpoint, writes them to disk.
    Changes (every action but VIEW) and anything inside a transaction are left as they are."""
    connection = connections[router.db_for_write(AuditEvent)]
    if action != AuditEvent.Action.VIEW or connection.in_atomic_block:
        yield
        return
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous=NORMAL")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute(f"PRAGMA synchronous={settings.SQLITE_SYNCHRONOUS}")
    elif connection.vendor == "postgresql":
        with transaction.atomic(using=connection.alias):
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
            yield
    else:
        yield


class LoginThrottle(models.Model):
    """Failed sign-ins counted for one key ("account:<username>", "address:<ip>",
    "reset:<email>") in a fixed window, and the lock they set.

    Rows live in the database so every server process and every worker counts the same
    failures; accounts/throttle.py updates a row only under a row lock, so parallel guesses
    are all counted."""

    key = models.CharField(max_length=300, unique=True)
    failures = models.PositiveIntegerField(default=0)
    window_started_at = models.DateTimeField(default=now)
    locked_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.failures} failures"


class KioskPin(models.Model):
    """A staff member's tablet PIN: what takes a tablet back from a patient (web/kiosk.py).
    Stored hashed, as a password is. Wrong tries are counted under a row lock; at
    KIOSK_PIN_ATTEMPTS the PIN is locked until the staff member signs in with their password
    (accounts/pins.py)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, models.CASCADE, related_name="kiosk_pin")
    pin_hash = models.CharField(max_length=200)
    failures = models.PositiveIntegerField(default=0)
    locked_at = models.DateTimeField(null=True, blank=True)
    set_at = models.DateTimeField(default=now)

    def __str__(self) -> str:
        return f"tablet PIN of user {self.user_id}"
