"""The `mesoclinic` command: Django's management commands, plus `demo` and `serve`.

mesoclinic demo [--reset] [--port 8000]   migrate, load the demo clinic, serve it
mesoclinic serve [--host H] [--port P]    the production server (waitress)
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


def _serve(host: str, port: int, threads: int) -> None:
    from waitress import serve

    from mesoclinic.api.body_limit import largest_body
    from mesoclinic.wsgi import application

    print(f"Serving mesoclinic at http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    # waitress reads a chunked body whole before the application sees it, up to 1 GB by
    # default; no path accepts more than largest_body(), so nothing larger is read.
    serve(
        application,
        host=host,
        port=port,
        threads=threads,
        ident="mesoclinic",
        max_request_body_size=largest_body(),
    )


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


def serve(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mesoclinic serve")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("THREADS", "8")))
    args = parser.parse_args(argv)
    _setup()
    from django.conf import settings

    if settings.SECRET_KEY == settings.INSECURE_DEFAULT_SECRET_KEY and not settings.DEBUG:
        print(
            "Set SECRET_KEY before serving in production (see README, Deployment).", file=sys.stderr
        )
        return 2
    _serve(args.host, args.port, args.threads)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "demo":
        return demo(argv[1:])
    if argv and argv[0] == "serve":
        return serve(argv[1:])
    _setup()
    from django.core.management import execute_from_command_line

    execute_from_command_line(["mesoclinic", *argv])
    return 0


if __name__ == "__main__":
    sys.exit(main())
