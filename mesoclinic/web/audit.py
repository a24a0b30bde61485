"""The managers' audit viewer: who read or changed what in their clinic, filtered by patient,
user, action and dates, newest first, with a CSV export of the filtered rows.

HIPAA's audit-controls standard (45 CFR §164.312(b)) asks that activity in systems holding
health data be recorded and examined; this page is where a manager examines it. Reading the
trail is itself a read of patient data, so the export writes an `export` row of its own."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

from django import forms
from django.apps import apps
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from mesoclinic.access import audit_list
from mesoclinic.accounts.auditlog import AuditFilter, events, safe_cell
from mesoclinic.accounts.models import AuditEvent, Clinic, User, audit
from mesoclinic.patients.models import Patient
from mesoclinic.web.context import MANAGER, caller, require

PAGE_SIZE = 50
CSV_HEADER = [
    "When",
    "User",
    "Action",
    "What",
    "Record",
    "Patient id",
    "Patient",
    "Channel",
    "Details",
]
CHANNELS = {
    "api": "API",
    "web": "Web",
    "admin": "Admin",
    "command": "Command",
    "login": "Sign-in",
    "account": "Account",
    "kiosk": "Clinic tablet",
    "link": "Signed link",
    "portal": "Patient portal",
    "site": "Public site",
    "smart": "App (SMART)",
    "sms": "Text message",
    "provider": "Payment or text provider",
    "worker": "Background worker",
    "optimiser": "Calendar optimiser",
}


class AuditFilterForm(forms.Form):
    patient = forms.CharField(
        required=False,
        max_length=100,
        label="Patient",
        help_text="A name or a patient number.",
    )
    user = forms.ModelChoiceField(
        queryset=User.objects.none(), required=False, label="User", empty_label="Anyone"
    )
    action = forms.ChoiceField(required=False, label="Action")
    since = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, clinic: Clinic, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clinic = clinic
        self.fields["user"].queryset = (  # type: ignore[attr-defined]
            User.objects.filter(memberships__clinic=clinic).distinct().order_by("username")
        )
        self.fields["user"].label_from_instance = lambda u: u.display_name  # type: ignore[attr-defined]
        self.fields["action"].choices = [("", "Any action"), *AuditEvent.Action.choices]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "The last day must not be before the first day.")
        return cleaned

    def audit_filter(self) -> AuditFilter:
        """The rows the form asks for; an invalid form asks for nothing in particular."""
        data = self.cleaned_data if self.is_valid() else {}
        user = data.get("user")
        return AuditFilter(
            patient_ids=self._patients(str(data.get("patient") or "").strip()),
            user_id=user.pk if user is not None else None,
            action=data.get("action") or None,
            since=data.get("since"),
            until=data.get("until"),
        )

    def _patients(self, text: str) -> frozenset[int] | None:
        """The clinic's patients a name or number names; None when no patient was asked for."""
        if not text:
            return None
        mine = Patient.objects.filter(clinic=self.clinic)
        if text.isdigit():
            return frozenset(mine.filter(pk=int(text)).values_list("pk", flat=True))
        match = Q()
        for word in text.split():
            match &= Q(first_name__icontains=word) | Q(last_name__icontains=word)
        return frozenset(mine.filter(match).values_list("pk", flat=True)[:500])


def _what(label: str) -> str:
    """A record's kind in words: "patients.Patient" is "Patient"."""
    try:
        return str(apps.get_model(label)._meta.verbose_name).capitalize()
    except (LookupError, ValueError):
        return label


def _rows(page: list[AuditEvent], clinic: Clinic) -> list[dict[str, Any]]:
    names = {
        p.pk: f"{p.first_name} {p.last_name}"
        for p in Patient.objects.filter(
            clinic=clinic, pk__in={e.patient_id for e in page if e.patient_id}
        ).only("pk", "first_name", "last_name")
    }
    return [
        {
            "event": e,
            "at": clinic.local(e.at),
            "who": e.user.display_name if e.user else "—",
            "action": e.get_action_display(),
            "what": _what(e.object_type) if e.object_type else "—",
            "patient": names.get(e.patient_id) if e.patient_id else None,
            "channel": CHANNELS.get(e.via, e.via),
        }
        for e in page
    ]


@login_required
@require_GET
def audit_trail(request: HttpRequest) -> HttpResponse:
    found = require(request, MANAGER)
    clinic = found.clinic
    form = AuditFilterForm(request.GET or None, clinic=clinic)
    chosen = form.audit_filter()
    pages = Paginator(events(clinic, chosen), PAGE_SIZE)
    page = pages.get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    # The trail names patients: showing a page of it is a read of each one it shows.
    audit_list(caller(request), "audit trail", [e.patient_id for e in page.object_list])
    response = render(
        request,
        "web/manage/audit.html",
        {
            "page": "audit",
            "form": form,
            "rows": _rows(list(page.object_list), clinic),
            "page_obj": page,
            "query": query.urlencode(),
        },
    )
    response["Cache-Control"] = "no-store"
    return response


class _Echo:
    """A file for csv.writer that hands each line back instead of keeping it."""

    def write(self, value: str) -> str:
        return value


@login_required
@require_GET
def audit_csv(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered rows as CSV, streamed a thousand at a time, so a year of a busy clinic's
    trail does not have to fit in memory. The export is audited before the first byte goes."""
    found = require(request, MANAGER)
    clinic = found.clinic
    form = AuditFilterForm(request.GET or None, clinic=clinic)
    chosen = form.audit_filter()
    selected = events(clinic, chosen)
    # The export is a snapshot of the trail as it stood when asked for: the rows this export
    # writes about itself (below) are not part of it.
    newest = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    selected = selected.filter(pk__lte=newest)
    audit(
        clinic=clinic,
        user=request.user,
        action=AuditEvent.Action.EXPORT,
        object_type="accounts.AuditEvent",
        via="web",
        rows=selected.count(),
        filters=chosen.as_detail(),
    )
    audit_list(
        caller(request),
        "audit trail CSV",
        selected.exclude(patient_id=None).values_list("patient_id", flat=True).distinct(),
        action=AuditEvent.Action.EXPORT,
    )
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(CSV_HEADER)
        chunk: list[AuditEvent] = []
        for event in selected.iterator(chunk_size=1000):
            chunk.append(event)
            if len(chunk) == 1000:
                yield from _csv_lines(writer, chunk, clinic)
                chunk = []
        yield from _csv_lines(writer, chunk, clinic)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    stamp = clinic.local(dt.datetime.now(dt.UTC)).strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    # The trail names patients: no browser or proxy may keep a copy.
    response["Cache-Control"] = "no-store"
    return response


def _csv_lines(writer: Any, chunk: list[AuditEvent], clinic: Clinic) -> Iterator[str]:
    for row in _rows(chunk, clinic):
        e = row["event"]
        yield writer.writerow(
            [
                row["at"].isoformat(timespec="seconds"),
                safe_cell(e.user.username if e.user else ""),
                e.action,
                e.object_type,
                safe_cell(e.object_id),
                e.patient_id or "",
                safe_cell(row["patient"] or ""),
                e.via,
                safe_cell(_detail(e.detail)),
            ]
        )


def _detail(detail: Any) -> str:
    return json.dumps(detail, sort_keys=True, default=str) if detail else ""
