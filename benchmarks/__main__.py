"""`make bench`: run every benchmark and print its figures.

Each benchmark runs against a throwaway SQLite database in a temporary folder and reports
percentiles and a ratio to a baseline run in the same process, because the machines are
shared and noisy. Record the figures with the machine and the date in docs/benchmarks.md.
"""

from __future__ import annotations

import os
import sys
import tempfile


def main() -> int:
    folder = tempfile.mkdtemp(prefix="mesoclinic-bench-")
    os.environ["DATA_DIR"] = folder
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mesoclinic.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    from benchmarks import session_gate

    session_gate.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
