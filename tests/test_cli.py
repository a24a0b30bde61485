"""The `mesoclinic` command, run as a user runs it: in a fresh folder, in its own process,
with the default embedded database (these tests ignore DATABASE_URL on purpose)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).with_name("mesoclinic")

# The same on either database: the PostgreSQL run of .ci/run leaves it out.
pytestmark = pytest.mark.embedded


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SECRET_KEY"}}
    environment.update({"DATA_DIR": str(tmp_path / "data"), **env})
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [str(BIN), *args],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


class CommandTests:
    def test_serve_refuses_the_insecure_default_secret_key(self, tmp_path: Path) -> None:
        result = run(tmp_path, "serve")
        assert result.returncode == 2
        assert "Set SECRET_KEY" in result.stderr

    def test_it_runs_django_management_commands(self, tmp_path: Path) -> None:
        result = run(tmp_path, "migrate", "--check")
        # An empty database has unapplied migrations; --check says so with exit code 1.
        assert result.returncode == 1
        result = run(tmp_path, "migrate", "--no-input")
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "data" / "mesoclinic.sqlite3").exists()
        assert run(tmp_path, "migrate", "--check").returncode == 0

    def test_demo_keeps_its_data_and_reset_starts_again(self, tmp_path: Path) -> None:
        first = run(tmp_path, "demo", "--no-serve")
        assert first.returncode == 0, first.stderr
        assert "Loaded the demo clinic." in first.stdout
        assert "manager / demo" in first.stdout
        again = run(tmp_path, "demo", "--no-serve")
        assert "already loaded; kept it" in again.stdout
        reset = run(tmp_path, "demo", "--reset", "--no-serve")
        assert reset.returncode == 0, reset.stderr
        assert "Loaded the demo clinic." in reset.stdout
