"""The manager's CSV import pages: upload a file, choose its columns, read the validation
report (on the page or as a CSV file) and import. The work is done in imports/actions.py;
every job is fetched through the access layer, so another role gets 403 and another clinic's
job 404."""

from __future__ import annotations

import csv
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from mesoclinic.access import (
    Caller,
    access_import_job,
    audit_list,
    import_jobs_for,
    lots_for,
    patients_for,
    products_for,
)
from mesoclinic.accounts.auditlog import safe_cell
from mesoclinic.accounts.models import AuditEvent, audit
from mesoclinic.imports import actions, logic
from mesoclinic.imports.models import ImportJob
from mesoclinic.web.context import MANAGER, caller
from mesoclinic.web.imports_forms import MappingForm, UploadForm

# How many created objects the result lists by name; the rest are counted.
SHOWN = 50
# How many of the file's rows the mapping step shows, so the columns can be recognised.
PREVIEW = 3
# How many problems the page lists; the downloaded report has them all.
PROBLEMS_SHOWN = 200


@login_required
def start(request: HttpRequest) -> HttpResponse:
    who = caller(request)
    found = who.require(MANAGER)
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            job = actions.do_upload(
                found.clinic,
                form.cleaned_data["kind"],
                upload.name or "",
                upload.read(),
                user=request.user,
            )
        except logic.FileProblem as exc:
            form.add_error("file", str(exc))
        else:
            return redirect("web:import_job", job_id=job.pk)
    return render(
        request,
        "web/imports/start.html",
        {"page": "import", "form": form, "jobs": import_jobs_for(who)[:10]},
    )


def _created(who: Caller, job: ImportJob) -> dict[str, Any]:
    """What the import created, the first SHOWN of each kind fetched through the access layer;
    the patients listed are audited as read."""
    ids = job.created_ids
    out: dict[str, Any] = {}
    if "patients" in ids:
        shown = list(patients_for(who, MANAGER).filter(pk__in=ids["patients"][:SHOWN]))
        audit_list(who, "import", [p.pk for p in shown], job=job.pk)
        out["patients"] = shown
    if "products" in ids:
        out["products"] = list(products_for(who, MANAGER).filter(pk__in=ids["products"][:SHOWN]))
    if "lots" in ids:
        lots = lots_for(who, MANAGER).select_related("product")
        out["lots"] = list(lots.filter(pk__in=ids["lots"][:SHOWN]))
    out["count"] = sum(len(v) for v in ids.values())
    out["more"] = out["count"] - sum(len(v) for k, v in out.items() if k != "count")
    return out


@login_required
def job_page(request: HttpRequest, job_id: int) -> HttpResponse:
    who = caller(request)
    job = access_import_job(who, job_id, MANAGER)
    if job.is_imported:
        return render(
            request,
            "web/imports/done.html",
            {"page": "import", "job": job, "created": _created(who, job)},
        )
    table = actions.table_of(job)
    fields = actions.fields_for(job.kind)
    form = MappingForm(
        fields,
        table.headers,
        request.POST or None,
        initial=MappingForm.initial_from(job.mapping),
    )
    if request.method == "POST" and form.is_valid():
        problems = actions.do_check(job, form.mapping())
        if problems:
            noun = "problem" if len(problems) == 1 else "problems"
            messages.error(request, f"The check found {len(problems)} {noun}, listed below.")
        else:
            messages.success(request, f"Every row is correct: {job.rows} ready to import.")
        return redirect("web:import_job", job_id=job.pk)
    checked = job.status == ImportJob.Status.CHECKED and request.method != "POST"
    return render(
        request,
        "web/imports/job.html",
        {
            "page": "import",
            "job": job,
            "form": form,
            "headers": table.headers,
            "preview": table.rows[:PREVIEW],
            "checked": checked,
            "problems": job.problems[:PROBLEMS_SHOWN] if checked else [],
            "problem_count": len(job.problems),
        },
    )


def _problem_count(count: int) -> str:
    noun = "problem" if count == 1 else "problems"
    return f"Nothing was imported: the file has {count} {noun}, listed below."


@login_required
@require_POST
def run(request: HttpRequest, job_id: int) -> HttpResponse:
    job = access_import_job(caller(request), job_id, MANAGER)
    try:
        problems = actions.do_import(job, user=request.user)
    except actions.AlreadyImported:
        messages.info(request, "This file was already imported.")
    except DatabaseError:
        # The transaction rolled back: nothing of the file is in the database.
        messages.error(
            request,
            "The import stopped on a database error and nothing was imported. Try again; if "
            "it fails again, tell whoever runs the server.",
        )
    else:
        if problems:
            messages.error(request, _problem_count(len(problems)))
        else:
            messages.success(request, f"Imported {job.rows} rows of {job.filename}.")
    return redirect("web:import_job", job_id=job.pk)


REPORT_HEADER = ["Row", "Column", "Problem"]


@login_required
def report_csv(request: HttpRequest, job_id: int) -> HttpResponse:
    """The last validation report, one problem a row, for the person fixing the file."""
    job = access_import_job(caller(request), job_id, MANAGER)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-report.csv"'
    writer = csv.writer(response)
    writer.writerow(REPORT_HEADER)
    for p in job.problems:
        row = p["row"] if p["row"] is not None else ""
        writer.writerow([row, safe_cell(p["column"]), safe_cell(p["problem"])])
    audit(
        clinic=job.clinic,
        user=request.user,
        action=AuditEvent.Action.EXPORT,
        obj=job,
        via="web",
        problems=len(job.problems),
    )
    return response
