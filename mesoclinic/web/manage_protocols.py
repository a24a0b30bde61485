"""The manager's protocol pages: the clinic's protocols, every fact of a version with its
sources, the version history, and editing (value by value, or the whole document).

Each save goes through `do_edit_protocol`, which validates the document with the same schema
as the shipped files and writes the next version; courses keep the version they were planned
with. Only a manager of the clinic may see these pages, and only the clinic's own copies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from mesoclinic.access import access_protocol
from mesoclinic.accounts.models import AuditEvent, audit
from mesoclinic.protocols.describe import changed_paths, sections
from mesoclinic.protocols.loader import ProtocolError
from mesoclinic.protocols.models import ClinicProtocol, StaleVersion, do_edit_protocol
from mesoclinic.web.context import MANAGER, caller, require
from mesoclinic.web.manage_protocol_forms import ProtocolDocumentForm, ProtocolValuesForm


@dataclass
class Version:
    protocol: ClinicProtocol
    course_count: int  # courses planned on this version, which keep it


def _with_courses(versions: QuerySet[ClinicProtocol]) -> list[Version]:
    counted = versions.select_related("created_by").annotate(n=Count("courses"))
    return [Version(p, p.n) for p in counted]


def _history(protocol: ClinicProtocol) -> list[Version]:
    """Every version, newest first, with how many courses were planned on each."""
    return _with_courses(
        ClinicProtocol.objects.filter(clinic=protocol.clinic, key=protocol.key).order_by("-version")
    )


@login_required
def protocols(request: HttpRequest) -> HttpResponse:
    found = require(request, MANAGER)
    current = ClinicProtocol.current_for_clinic(found.clinic)
    rows = sorted(
        _with_courses(ClinicProtocol.objects.filter(pk__in=[p.pk for p in current])),
        key=lambda v: v.protocol.name.lower(),
    )
    return render(request, "web/manage/protocols.html", {"page": "protocols", "rows": rows})


@login_required
def protocol_detail(request: HttpRequest, key: str) -> HttpResponse:
    current = access_protocol(caller(request), key)
    version = request.GET.get("version", "")
    shown = current
    if version.isdigit() and int(version) != current.version:
        shown = access_protocol(caller(request), key, int(version))
    history = _history(current)
    return render(
        request,
        "web/manage/protocol.html",
        {
            "page": "protocols",
            "protocol": shown,
            "current": current,
            "sections": sections(shown.document),
            "history": history,
            "older_courses": sum(v.course_count for v in history if v.protocol.pk != current.pk),
        },
    )


@login_required
def protocol_edit(request: HttpRequest, key: str) -> HttpResponse:
    current = access_protocol(caller(request), key)
    editor = request.POST.get("editor") if request.method == "POST" else None
    values_form = ProtocolValuesForm(request.POST if editor == "values" else None, current=current)
    document_form = ProtocolDocumentForm(
        request.POST if editor == "document" else None, current=current
    )
    form: ProtocolValuesForm | ProtocolDocumentForm | None = (
        values_form if editor == "values" else document_form if editor == "document" else None
    )
    if form is not None and form.is_valid():
        document = form.new_document()
        changed = changed_paths(current.document, document)
        if not changed:
            form.add_error(None, f"Nothing changed: this is what version {current.version} says.")
        else:
            try:
                new = _save(request, current, document, form.cleaned_data, editor, changed)
            except ProtocolError as exc:
                form.add_problems(exc.problems)
            except StaleVersion as exc:
                who = exc.latest.created_by
                by = f", saved by {who.display_name}" if who else ""
                form.add_error(
                    None,
                    f"This protocol is now at version {exc.latest.version}{by}, not the "
                    f"version {form.cleaned_data['base_version']} this form was opened on. "
                    "Nothing was saved: open the editor again to start from the new version.",
                )
            else:
                messages.success(
                    request,
                    f"Saved {new.name} version {new.version}. Courses planned earlier keep "
                    "their version.",
                )
                return redirect("web:manage_protocol", key=key)
    history = _history(current)
    return render(
        request,
        "web/manage/protocol_edit.html",
        {
            "page": "protocols",
            "protocol": current,
            "values_form": values_form,
            "document_form": document_form,
            "editor": editor,
            "courses_on_current": next(
                (v.course_count for v in history if v.protocol.pk == current.pk), 0
            ),
            "courses_on_any": sum(v.course_count for v in history),
        },
    )


def _save(
    request: HttpRequest,
    current: ClinicProtocol,
    document: dict[str, Any],
    data: dict[str, Any],
    editor: str | None,
    changed: list[str],
) -> ClinicProtocol:
    """Save the next version, unless someone saved one since the form was opened. Raises
    ProtocolError (nothing saved) when the schema refuses the document."""
    note = str(data["change_note"]).strip()
    with transaction.atomic():
        new = do_edit_protocol(
            current.clinic,
            current.key,
            document,
            request.user,
            note,
            base_version=data["base_version"],
        )
        audit(
            clinic=current.clinic,
            user=request.user,
            action=AuditEvent.Action.UPDATE,
            obj=new,
            via="web",
            version=new.version,
            note=note,
            editor=editor,
            changed=changed,
        )
    return new
