"""A clinic's own, versioned copies of the shipped protocols."""

from __future__ import annotations

import json
import re
from functools import cached_property, lru_cache
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models.functions import Cast
from django.utils import timezone

from mesoclinic.accounts.models import Clinic, acting
from mesoclinic.protocols.loader import shipped_protocols, validate_protocol
from mesoclinic.protocols.schema import Protocol


def installed_note(version: int) -> str:
    """The change note of a clinic's first version of a shipped protocol, in words."""
    return f"Installed from mesoclinic's standard protocols (version {version})"


# The notes earlier releases wrote on installing a protocol: first the file's name
# ("Installed from cellulite.toml (file version 1)"), then "Installed with mesoclinic (protocol
# version 1)". Migration 0002 rewrote the stored ones; a row restored from an older backup is
# still read in words.
_OLD_INSTALLED_NOTE = re.compile(
    r"^Installed (?:from [\w.-]+\.toml \(file version|with mesoclinic \(protocol version) (\d+)\)$"
)


def readable_note(note: str) -> str:
    """A change note as people read it: an old installation note in today's words."""
    found = _OLD_INSTALLED_NOTE.match(note.strip())
    return installed_note(int(found[1])) if found else note


class ClinicProtocol(models.Model):
    """One version of a clinic's copy of a protocol. Editing writes a new version; a course
    keeps a foreign key to the exact version it was planned with."""

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="protocols")
    key = models.SlugField(max_length=60)
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    document = models.JSONField(
        help_text="The validated protocol, in the shape of a protocol file."
    )
    change_note = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["key", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["clinic", "key", "version"], name="one_protocol_version_per_clinic"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def note(self) -> str:
        """The change note, in words (`readable_note`)."""
        return readable_note(self.change_note)

    @cached_property
    def spec(self) -> Protocol:
        return _validated(
            json.dumps(self.document, sort_keys=True),
            f"{self.clinic_id}/{self.key} v{self.version}",
        )

    @classmethod
    def specs_of(cls, clinic: Clinic) -> dict[int, Protocol]:
        """Every version of the clinic's protocols, validated, by id. The documents are read
        as their stored text, so a version validated before in this process is neither
        parsed nor validated again (Today asks on every load)."""
        rows = (
            cls.objects.filter(clinic=clinic)
            .annotate(text=Cast("document", models.TextField()))
            .values_list("pk", "key", "version", "text")
        )
        return {
            pk: _validated(text, f"{clinic.pk}/{key} v{version}") for pk, key, version, text in rows
        }

    @classmethod
    def current(cls, clinic: Clinic, key: str) -> ClinicProtocol | None:
        return cls.objects.filter(clinic=clinic, key=key).order_by("-version").first()

    @classmethod
    def current_for_clinic(cls, clinic: Clinic) -> list[ClinicProtocol]:
        latest: dict[str, ClinicProtocol] = {}
        for p in cls.objects.filter(clinic=clinic).order_by("key", "-version"):
            latest.setdefault(p.key, p)
        return list(latest.values())


@lru_cache(maxsize=256)
def _validated(document: str, origin: str) -> Protocol:
    """A stored document, validated once per process. Stored versions are never edited in
    place and the validated model is frozen, so the same text always gives the same model."""
    return validate_protocol(json.loads(document), origin)


def do_install_protocols(clinic: Clinic) -> list[ClinicProtocol]:
    """Give a clinic version 1 of every shipped protocol it does not have yet."""
    have = set(ClinicProtocol.objects.filter(clinic=clinic).values_list("key", flat=True))
    created = []
    for key, protocol in shipped_protocols().items():
        if key in have:
            continue
        created.append(
            ClinicProtocol.objects.create(
                clinic=clinic,
                key=key,
                version=1,
                name=protocol.name,
                document=protocol.model_dump(mode="json", exclude_none=True),
                change_note=installed_note(protocol.version),
            )
        )
    return created


class StaleVersion(Exception):
    """The edit started from an older version than the latest: saving it would silently undo
    whatever the latest changed."""

    def __init__(self, latest: ClinicProtocol):
        super().__init__(f"{latest.key} is at version {latest.version}")
        self.latest = latest


def do_edit_protocol(
    clinic: Clinic,
    key: str,
    document: dict[str, Any],
    user: Any,
    change_note: str = "",
    base_version: int | None = None,
) -> ClinicProtocol:
    """Validate an edited document and save it as the clinic's next version of the protocol.
    Raises ProtocolError, naming each field, when the document is malformed, and StaleVersion
    when `base_version` (the version the editor started from) is no longer the latest."""
    with transaction.atomic():
        current = (
            ClinicProtocol.objects.select_for_update()
            .filter(clinic=clinic, key=key)
            .order_by("-version")
            .first()
        )
        if current is not None and base_version is not None and current.version != base_version:
            raise StaleVersion(current)
        next_version = (current.version + 1) if current else 1
        protocol = validate_protocol(document, f"{key} (edit)", expected_key=key)
        return ClinicProtocol.objects.create(
            clinic=clinic,
            key=key,
            version=next_version,
            name=protocol.name,
            document=protocol.model_dump(mode="json", exclude_none=True),
            change_note=change_note,
            created_by=acting(user),
        )
