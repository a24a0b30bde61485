"""The `mesoclinic` command: Django's management commands, plus `demo` and `serve`.

mesoclinic demo [--reset] [--port 8000]   migrate, load the demo clinic, serve it
mesoclinic init [--clinic-name N …]        migrate, create the clinic and its first manager
mesoclinic serve [--host H] [--port P]    the production server (waitress in one worker process
                [--workers N] [--threads T]  per core); refuses to start with an unsafe
                                          configuration (see production_problems)
mesoclinic move-to --database postgres://…  copy every row into an empty PostgreSQL database
mesoclinic migrate | createsuperuser | …  any Django management command
"""

from __future__ import annotations

import argparse
import os
import sys


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mesoclinic.settings")
    import django

    django.setup()


def server_options() -> dict[str, object]:
    """Waitress's options beyond the address. Waitress reads a request's whole body, chunked
    or not, into a buffer before the app sees it; its own limit is 1 GB, so without this a
    200 MB upload would be received in full before any check of ours could refuse it."""
    from django.conf import settings

    return {"ident": "mesoclinic", "max_request_body_size": settings.MAX_REQUEST_BYTES}


def _proxy_options() -> dict[str, object]:
    from django.conf import settings

    if not settings.BEHIND_TLS_PROXY:
        return {}
    # waitress drops X-Forwarded-* headers unless they come from a proxy it trusts, and Django
    # then never learns the request came over HTTPS (an endless redirect to https). Trusting
    # the proxy also makes the client's own address the request's REMOTE_ADDR.
    return {
        "trusted_proxy": settings.TRUSTED_PROXY,
        "trusted_proxy_count": 1,
        "trusted_proxy_headers": {"x-forwarded-proto", "x-forwarded-for"},
    }


def _serve(host: str, port: int, threads: int, workers: int = 1) -> int:
    """Serve on `host`:`port` with `workers` processes of `threads` threads each
    (mesoclinic/ops/server.py)."""
    from django.db import connections
    from waitress import serve

    from mesoclinic.ops import server
    from mesoclinic.wsgi import application

    options = {**server_options(), **_proxy_options()}

    def serve_one(sock: object, threads: int) -> None:
        serve(application, sockets=[sock], threads=threads, **options)

    def ready() -> None:
        # The checks before serving opened a connection; a worker must open its own, never
        # share its parent's.
        connections.close_all()
        print(
            f"Serving mesoclinic at http://{host}:{port}/ with {workers} worker"
            f"{'s' if workers != 1 else ''} of {threads} threads (Ctrl-C to stop)",
            flush=True,
        )

    return server.run(host, port, workers, threads, serve_one, ready)


def demo(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mesoclinic demo", description=demo.__doc__)
    parser.add_argument("--reset", action="store_true", help="delete the database and start again")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-serve", action="store_true", help="load the data and exit")
    args = parser.parse_args(argv)
    _setup()
    from django.core.management import call_command

    from mesoclinic import demo as demo_data

    if args.reset:
        call_command("flush", interactive=False, verbosity=0)
    call_command("migrate", interactive=False, verbosity=0)
    created = demo_data.load()
    print(
        "Loaded the demo clinic." if created else "The demo clinic is already loaded; kept it.",
        flush=True,
    )
    print(demo_data.logins_text(args.host, args.port), flush=True)
    if not args.no_serve:
        _serve(args.host, args.port, threads=8)
    return 0


# Django's own test of a strong key (security.W009): long, varied, and not one Django generated
# for a throwaway project.
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5


def _migrations(count: int) -> str:
    return "1 migration is" if count == 1 else f"{count} migrations are"


def production_problems(allow_console_email: bool) -> list[str]:
    """Every reason this configuration may not serve real patients, each naming what to set.
    The demo skips these on purpose: it serves made-up patients on the developer's machine."""
    from django.conf import settings

    from mesoclinic.ops.health import unapplied_migrations

    problems = []
    key = settings.SECRET_KEY
    if key == settings.INSECURE_DEFAULT_SECRET_KEY:
        problems.append(
            "SECRET_KEY is not set, so sessions and signed links would use the development "
            "key that anyone can read. Set SECRET_KEY to a long random value, for example the "
            'output of: python -c "import secrets; print(secrets.token_urlsafe(50))"'
        )
    elif (
        len(key) < SECRET_KEY_MIN_LENGTH
        or len(set(key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
        or key.startswith("django-insecure-")
    ):
        problems.append(
            f"SECRET_KEY is weak: it needs at least {SECRET_KEY_MIN_LENGTH} characters, at least "
            f"{SECRET_KEY_MIN_UNIQUE_CHARACTERS} of them different, and must not be a key Django "
            "generated for a test project. Set SECRET_KEY to a long random value."
        )
    if settings.DEBUG:
        problems.append(
            "DEBUG is on, which shows code and settings to anyone who meets an error. "
            "Remove DEBUG from the environment or set DEBUG=0."
        )
    if settings.EMAIL_BACKEND == settings.CONSOLE_EMAIL_BACKEND and not allow_console_email:
        problems.append(
            "Emails (reminders, infection-watch prompts, password resets) would only be printed "
            "to the console. Set EMAIL_URL to your mail server, for example "
            "smtp+tls://user:password@mail.example.com:587, or start with "
            "--allow-console-email (or ALLOW_CONSOLE_EMAIL=1) if that is what you want."
        )
    try:
        pending = unapplied_migrations()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the database is reported.
        problems.append(f"The database cannot be read ({exc}). Check DATABASE_URL.")
    else:
        if pending:
            problems.append(
                f"The database is not up to date: {_migrations(len(pending))} not applied. "
                "Run `mesoclinic migrate` first."
            )
    return problems


def serve(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mesoclinic serve")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument(
        "--workers",
        default=os.environ.get("WORKERS", ""),
        help="worker processes (also WORKERS); one per core by default",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("THREADS", "4")),
        help="threads in each worker (also THREADS)",
    )
    parser.add_argument(
        "--allow-console-email",
        action="store_true",
        help="serve even though emails are only printed (also ALLOW_CONSOLE_EMAIL=1)",
    )
    args = parser.parse_args(argv)
    from mesoclinic.ops.server import workers_from_env

    try:
        workers = workers_from_env(args.workers)
    except ValueError as exc:
        parser.error(str(exc))
    _setup()
    from django.conf import settings

    problems = production_problems(args.allow_console_email or settings.ALLOW_CONSOLE_EMAIL)
    if problems:
        these = "this is" if len(problems) == 1 else "these are"
        print(f"mesoclinic will not serve until {these} fixed:", file=sys.stderr)
        for problem in problems:
            print(f"- {problem}", file=sys.stderr)
        print("See docs/deployment.md.", file=sys.stderr)
        return 2
    return _serve(args.host, args.port, args.threads, workers)


def init(argv: list[str]) -> int:
    """Bring the database up to date, then create the clinic and its first manager (the
    `init` management command; `mesoclinic init --help` lists its flags)."""
    _setup()
    from django.core.management import call_command
    from django.core.management.base import CommandError

    if "-h" not in argv and "--help" not in argv:
        call_command("migrate", interactive=False, verbosity=0)
    try:
        call_command("init", *argv)
    except CommandError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def move_to(argv: list[str]) -> int:
    """Copy every row of the current database into an empty PostgreSQL database (the
    `move_to` management command, mesoclinic/ops/move.py); a failure is one sentence on
    standard error and exit code 1."""
    _setup()
    from django.core.management import call_command
    from django.core.management.base import CommandError

    try:
        call_command("move_to", *argv)
    except CommandError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "init":
        return init(argv[1:])
    if argv and argv[0] == "demo":
        return demo(argv[1:])
    if argv and argv[0] == "serve":
        return serve(argv[1:])
    if argv and argv[0] == "move-to":
        return move_to(argv[1:])
    _setup()
    from django.core.management import execute_from_command_line

    execute_from_command_line(["mesoclinic", *argv])
    return 0


if __name__ == "__main__":
    sys.exit(main())
