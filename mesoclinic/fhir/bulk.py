"""FHIR Bulk Data `$export` (Bulk Data Access IG STU 2): a job row per request, run by the
background worker (`mesoclinic worker`), one NDJSON file per resource type.

1. `do_request_export` records the request (a manager's, already checked by the view).
2. `claim` takes the oldest waiting job with one conditional UPDATE that stamps a fresh token
   (or a running one whose worker let the lease run out): two workers never hold one job.
3. `run` reads the rows through the same access layer and resource registry as the REST API
   (views.KINDS), as the manager who asked, a queryset `.iterator()` at a time, and writes each
   resource as one line as soon as it is built, so memory stays bounded whatever the clinic's
   size. Every few thousand rows it checks that the job is still its own (a DELETE cancels it)
   and updates the progress. It finishes with one EXPORT audit row per patient included,
   written in one insert, in the same transaction as the job's DONE.
4. `sweep` deletes the files and the row of every job finished more than
   FHIR_EXPORT_RETENTION_HOURS ago.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from mesoclinic import access
from mesoclinic.access import MANAGE, Caller
from mesoclinic.accounts.models import AuditEvent, Membership
from mesoclinic.fhir import mapping
from mesoclinic.fhir.models import ExportJob
from mesoclinic.formulary.models import Lot

logger = logging.getLogger(__name__)

CHECK_EVERY = 2000  # rows between checks that the job is still ours, with a progress update


def directory(job: ExportJob) -> Path:
    """The job's files, as written under its current claim: a worker that lost its claim
    (its lease ran out) writes into a folder of its own and never over the new holder's."""
    return Path(settings.FHIR_EXPORT_DIR) / f"{job.pk}-{job.claim_token}"


def _remove_files(pk: int) -> None:
    for folder in Path(settings.FHIR_EXPORT_DIR).glob(f"{pk}-*"):
        shutil.rmtree(folder, ignore_errors=True)


def retention() -> dt.timedelta:
    return dt.timedelta(hours=settings.FHIR_EXPORT_RETENTION_HOURS)


def expired(job: ExportJob) -> bool:
    return job.finished_at is not None and job.finished_at < timezone.now() - retention()


def types_for(level: str) -> list[str]:
    """The types an export of `level` may hold: everything the clinic has for a system-level
    export; the Patient compartment (the types that belong to a patient) otherwise."""
    from mesoclinic.fhir.views import KINDS

    if level == ExportJob.Level.SYSTEM:
        return list(KINDS)
    return [name for name, kind in KINDS.items() if kind.patient]


def exposed_patients(lot: Lot) -> QuerySet[Any]:
    """The Group `lot-<id>`: the patients given the lot, in a session or an allergy test."""
    from mesoclinic.courses.models import AllergyTestInjection, SessionInjection
    from mesoclinic.patients.models import Patient

    sessions = SessionInjection.objects.filter(lot=lot).values("session__course__patient_id")
    tests = AllergyTestInjection.objects.filter(lot=lot).values("test__course__patient_id")
    return Patient.objects.filter(Q(pk__in=sessions) | Q(pk__in=tests)).values("pk")


def do_request_export(
    caller: Caller,
    level: str,
    *,
    lot: Lot | None = None,
    types: Iterable[str] = (),
    since: dt.datetime | None = None,
    request_url: str,
) -> ExportJob:
    """Record a manager's kick-off request for the worker."""
    membership = caller.require(MANAGE)
    return ExportJob.objects.create(
        clinic_id=membership.clinic_id,
        requested_by=caller.user,
        level=level,
        lot=lot,
        types=list(types),
        since=since,
        request_url=request_url,
    )


def do_delete(job: ExportJob) -> None:
    """A client's DELETE: the job and its files are gone; a worker running it stops at its next
    check and removes whatever it wrote after this."""
    ExportJob.objects.filter(pk=job.pk).delete()
    _remove_files(job.pk)


def _due() -> Q:
    lease = dt.timedelta(minutes=settings.FHIR_EXPORT_LEASE_MINUTES)
    return Q(status=ExportJob.Status.PENDING) | Q(
        status=ExportJob.Status.RUNNING, claimed_at__lt=timezone.now() - lease
    )


def claim(worker: str) -> ExportJob | None:
    """The oldest due job, now held by `worker` alone; None when there is none."""
    for _ in range(3):
        pk = (
            ExportJob.objects.filter(_due())
            .order_by("created_at", "pk")
            .values_list("pk", flat=True)
            .first()
        )
        if pk is None:
            return None
        token = secrets.token_hex(16)
        taken = ExportJob.objects.filter(_due(), pk=pk).update(
            status=ExportJob.Status.RUNNING,
            claim_token=token,
            claimed_by=worker[:100],
            claimed_at=timezone.now(),
            progress="claimed",
        )
        if taken:
            return ExportJob.objects.get(pk=pk)
    return None


def run_due(worker: str, limit: int = 1) -> list[ExportJob]:
    """Claim and run up to `limit` jobs; the jobs run, as they ended."""
    done = []
    for _ in range(limit):
        job = claim(worker)
        if job is None:
            break
        run(job)
        done.append(job)
    return done


def sweep() -> int:
    """Delete every job (and its files) finished more than the retention time ago."""
    cutoff = timezone.now() - retention()
    old = list(ExportJob.objects.filter(finished_at__lt=cutoff).values_list("pk", flat=True))
    for pk in old:
        _remove_files(pk)
    ExportJob.objects.filter(pk__in=old).delete()
    return len(old)


class Cancelled(Exception):
    """The job was deleted, or another worker took it over, while it ran."""


def _caller_of(job: ExportJob) -> Caller:
    """The manager who asked, as they are now: an export runs only while they still manage
    the clinic."""
    membership = (
        Membership.objects.filter(user_id=job.requested_by_id or 0, clinic_id=job.clinic_id)
        .select_related("clinic", "user")
        .first()
    )
    user = membership.user if membership is not None else None
    return Caller(user=user, membership=membership, via="api")


def run(job: ExportJob) -> None:
    """Write the job's files and finish it (DONE, or FAILED with the reason)."""
    held = ExportJob.objects.filter(pk=job.pk, claim_token=job.claim_token)
    folder = directory(job)
    try:
        caller = _caller_of(job)
        caller.require(MANAGE)
        job.transaction_time = timezone.now()
        held.update(transaction_time=job.transaction_time)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        output, patients = _write(job, caller, held, folder)
        with transaction.atomic():
            if not held.update(
                status=ExportJob.Status.DONE,
                output=output,
                patient_ids=sorted(patients),
                progress="done",
                finished_at=timezone.now(),
            ):
                raise Cancelled
            access.audit_list(
                caller,
                "fhir $export",
                patients,
                action=AuditEvent.Action.EXPORT,
                export=job.pk,
                level=job.level,
            )
    except Cancelled:
        shutil.rmtree(folder, ignore_errors=True)
    except Exception as exc:
        logger.exception("FHIR export %s failed", job.pk)
        shutil.rmtree(folder, ignore_errors=True)
        held.update(
            status=ExportJob.Status.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:500],
            progress="failed",
            finished_at=timezone.now(),
        )
    if ExportJob.objects.filter(pk=job.pk).exists():
        job.refresh_from_db()


def _write(
    job: ExportJob, caller: Caller, held: QuerySet[ExportJob], folder: Path
) -> tuple[list[dict[str, Any]], set[int]]:
    """One NDJSON file per type with resources: the manifest's outputs, and the patients."""
    from mesoclinic.fhir.views import KINDS, patient_id_of

    group = exposed_patients(job.lot) if job.lot is not None else None
    output: list[dict[str, Any]] = []
    patients: set[int] = set()
    rows_done = 0
    for name in job.types or types_for(job.level):
        kind = KINDS[name]
        path = folder / f"{name}.ndjson"
        count = 0
        with path.open("w", encoding="utf-8") as out:
            for source in kind.sources:
                qs = source.rows(caller, kind.need)
                if group is not None:
                    qs = qs.filter(**{f"{source.patient}__in": group})
                if job.since is not None and source.updated:
                    qs = qs.filter(**{f"{source.updated}__gt": job.since})
                for row in qs.order_by(source.id_field).iterator(chunk_size=CHECK_EVERY):
                    out.write(json.dumps(mapping.checked(source.build(row))))
                    out.write("\n")
                    pid = patient_id_of(row, source.patient)
                    if pid is not None:
                        patients.add(pid)
                    count += 1
                    rows_done += 1
                    if rows_done % CHECK_EVERY == 0 and not held.update(
                        progress=f"{name}: {count:,} resources; {rows_done:,} in all"
                    ):
                        raise Cancelled
        if count:
            output.append({"type": name, "count": count})
        else:
            path.unlink()
        if not held.update(progress=f"{name} done; {rows_done:,} resources in all"):
            raise Cancelled
    return output, patients
