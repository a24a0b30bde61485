"""Log formatting and filtering: JSON lines for a log collector, and no tracebacks for the
403 and 404 answers that are part of ordinary traffic."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import IO, Any

# The attributes every LogRecord has; anything else on a record came from `extra=` and is
# written as a field of its own (the access log's method, path, status and so on).
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# Django's request logger passes the request object itself in `extra`; it is not data to log.
_SKIP = {"request", "server_time"}


class StderrHandler(logging.StreamHandler[IO[str]]):
    """Writes to standard error as it is when a line is written, not as it was when logging was
    configured. `mesoclinic` configures logging again each time a command sets Django up, and a
    handler holding on to an earlier stream (a test's captured output, since closed) would fail
    on every later line."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        # StreamHandler.__init__ assigns the stream; the property always reads sys.stderr.
        pass


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, the record's
    extra fields, and the traceback as text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in _SKIP and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


class DropClientErrorTracebacks(logging.Filter):
    """Keeps the line for an answer below 500 but drops its traceback. Django's request logger
    attaches the exception to "Forbidden (Permission denied)" and to bad requests, which would
    fill the log with stack traces of nothing going wrong."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
