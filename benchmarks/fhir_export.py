"""FHIR bulk `$export`: a system-level export of a busy clinic, as the worker runs it.

1. Build the money benchmark's clinic (benchmarks/money.py): PATIENTS patients, a year of
   YEAR_SESSIONS sessions with their visits, courses and packages; and a manager.
2. Request a system-level export and run it in this process, as the worker would
   (fhir/bulk.py): every type through the access layer and the R4B models, one NDJSON line at
   a time.
3. Print the time, the resources written per second, the size of the files and the growth
   of the process's peak memory (bounded: rows are streamed, never held).
"""

from __future__ import annotations

import datetime as dt
import platform
import resource
import time

from benchmarks import money


def run(sessions: int = money.YEAR_SESSIONS) -> dict[str, float]:
    from mesoclinic.accounts.models import Membership, User
    from mesoclinic.fhir import bulk
    from mesoclinic.fhir.models import ExportJob

    started = time.perf_counter()
    clinic, _, _, _ = money._build(sessions)
    build_s = time.perf_counter() - started
    manager = User.objects.create_user("bench-manager")
    Membership.objects.create(user=manager, clinic=clinic, role=Membership.Role.MANAGER)
    ExportJob.objects.create(
        clinic=clinic,
        requested_by=manager,
        level=ExportJob.Level.SYSTEM,
        request_url="http://bench/fhir/R4B/$export",
    )
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    (job,) = bulk.run_due("bench")
    seconds = time.perf_counter() - started
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert job.status == ExportJob.Status.DONE, job.error
    total = sum(o["count"] for o in job.output)
    size = sum(p.stat().st_size for p in bulk.directory(job).iterdir())
    print(
        f"fhir_export benchmark · {platform.machine()} · {platform.python_version()} · "
        f"{dt.date.today().isoformat()}"
    )
    print(f"  the money clinic with {sessions:,} sessions, built in {build_s:.1f} s")
    for o in job.output:
        print(f"  {o['type']:<26} {o['count']:>8,}")
    print(
        f"  system $export: {total:,} resources in {seconds:.1f} s "
        f"({total / seconds:,.0f} resources/s), {size / 1e6:.1f} MB of NDJSON; "
        f"peak memory grew {(peak_after - peak_before) / 1024:.0f} MB"
    )
    return {"seconds": seconds, "resources": total, "per_second": total / seconds}
