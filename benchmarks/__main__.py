"""`make bench`: run every benchmark and print its figures.

Each benchmark runs against a throwaway SQLite database in a temporary folder and reports
percentiles and a ratio to a baseline run in the same process, because the machines are
shared and noisy. `python -m benchmarks pages` runs one of them. Record the figures with
the machine and the date in docs/benchmarks.md.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

BENCHMARKS = (
    "session_gate",
    "pages",
    "booking",
    "booking_storm",
    "optimiser",
    "surveillance",
    "analytics",
    "photos",
    "request_limits",
    "serving",
    "trust",
    "signin",
    "imports",
    "load",
    "scaling",
    "money",
    "fhir_export",
    "fhir_api",
)


def main() -> int:
    folder = tempfile.mkdtemp(prefix="mesoclinic-bench-")
    try:
        return run(folder)
    finally:
        # The throwaway database and whatever the benchmarks wrote beside it.
        shutil.rmtree(folder, ignore_errors=True)


def run(folder: str) -> int:
    os.environ["DATA_DIR"] = folder
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mesoclinic.settings")
    # One access-log line per request would bury the figures; `serving` measures its cost.
    os.environ.setdefault("ACCESS_LOG", "0")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    from benchmarks import (
        analytics,
        booking,
        fhir_api,
        fhir_export,
        imports,
        load,
        money,
        optimiser,
        pages,
        photos,
        request_limits,
        scaling,
        serving,
        session_gate,
        signin,
        surveillance,
        trust,
    )

    if sys.argv[1:] == ["storm"]:  # booking_storm re-running itself on PostgreSQL
        booking.storm_from_env()
        return 0
    if sys.argv[1:] == ["load-here"]:  # load re-running itself on PostgreSQL
        load.run_here(int(os.environ.get("BENCH_LOAD_SCALE", load.SCALE)))
        return 0
    if sys.argv[1:] == ["scaling-here"]:  # scaling measuring one scale in its own database
        scaling.run_here(
            int(os.environ["BENCH_SCALE"]), int(os.environ.get("BENCH_SCALE_RUNS", scaling.RUNS))
        )
        return 0
    if sys.argv[1:] == ["load-profile"]:  # where the mixed load's time goes, in-process
        load.profile_here(int(os.environ.get("BENCH_LOAD_SCALE", load.SCALE)))
        return 0
    chosen = sys.argv[1:] or list(BENCHMARKS)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        print(f"No benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}.")
        return 2
    runs = {
        "session_gate": session_gate.run,
        "pages": pages.run,
        "booking": booking.run_course,
        "booking_storm": booking.run_storm,
        "optimiser": optimiser.run,
        "surveillance": surveillance.run,
        "analytics": analytics.run,
        "photos": photos.run,
        "request_limits": request_limits.run,
        "serving": serving.run,
        "trust": trust.run,
        "signin": signin.run,
        "imports": imports.run,
        "load": load.run,
        "scaling": scaling.run,
        "money": money.run,
        "fhir_export": fhir_export.run,
        "fhir_api": fhir_api.run,
    }
    for name in chosen:
        runs[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
