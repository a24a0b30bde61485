"""Printable documents as PDF: a course's plan and quote, a signed consent, and a session's
aftercare sheet.

The builders are plain functions: data in, PDF bytes out. They read no database and check no
permission; the views in web/documents.py fetch the records for the caller's clinic and turn
them into the arguments here. Every document shares one page: the clinic's name at the top,
and at the bottom when it was generated (in the clinic's time zone) and "Page n of m".

They only print what the records say (the protocol's texts with their sources, the consent
text exactly as signed, the aftercare rules), and add no claims of their own.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import hashlib
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import reportlab
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, LETTER
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    Image,
    KeepTogether,
    ListFlowable,
    ListItem,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

INK = colors.HexColor("#1c2430")
MUTED = colors.HexColor("#5b6573")
RULE = colors.HexColor("#c9ced6")
SHADE = colors.HexColor("#f1f3f6")

# A drawn signature is kept as the SVG path the signature pad wrote ("M x y L x y ..."); the
# API also accepts a data: URL of a PNG or JPEG. Both are bounded, so a huge value cannot make
# the PDF (or the request) arbitrarily slow.
MAX_SIGNATURE_POINTS = 20_000
MAX_SIGNATURE_IMAGE_BYTES = 2_000_000
SIGNATURE_FORM = "signature"
_PATH_STEP = re.compile(r"([ML])\s*(-?\d+(?:\.\d+)?)[\s,]+(-?\d+(?:\.\d+)?)")
_DATA_URL = re.compile(r"data:image/(?:png|jpeg|jpg);base64,([A-Za-z0-9+/=\s]+)", re.IGNORECASE)
_BULLET = re.compile(r"^\s*[-•*]\s+")


@dataclass(frozen=True)
class Letterhead:
    """What every page shows: the clinic, the document's title, and when it was generated."""

    clinic: str
    city: str
    title: str
    generated_at: dt.datetime  # aware, in the clinic's time zone
    page_size: tuple[float, float] = A4


def page_size_for(time_zone: str) -> tuple[float, float]:
    """US Letter for a clinic in the Americas, A4 elsewhere. The clinic records no country, so
    its time zone stands in: near enough to print on the paper in the clinic's printer."""
    return LETTER if time_zone.startswith(("America/", "US/", "Canada/")) else A4


# Fonts and styles --------------------------------------------------------------------------


@functools.cache
def _fonts() -> str:
    """Register Bitstream Vera, which ships inside reportlab, and return its family name. The
    PDF standard fonts cover Latin-1 only; Vera also covers names such as "Łucja" or "Dvořák",
    and it is embedded, so the PDF looks the same on every machine."""
    folder = Path(reportlab.__file__).parent / "fonts"
    faces = {
        "Vera": "Vera.ttf",
        "Vera-Bold": "VeraBd.ttf",
        "Vera-Italic": "VeraIt.ttf",
        "Vera-BoldItalic": "VeraBI.ttf",
    }
    for name, file in faces.items():
        pdfmetrics.registerFont(TTFont(name, str(folder / file)))
    pdfmetrics.registerFontFamily(
        "Vera", normal="Vera", bold="Vera-Bold", italic="Vera-Italic", boldItalic="Vera-BoldItalic"
    )
    return "Vera"


@functools.cache
def _styles() -> dict[str, ParagraphStyle]:
    font = _fonts()
    body = ParagraphStyle("body", fontName=font, fontSize=10, leading=14, textColor=INK)
    return {
        "body": body,
        "title": ParagraphStyle(
            "title", parent=body, fontName="Vera-Bold", fontSize=17, leading=22, spaceAfter=4
        ),
        "subtitle": ParagraphStyle(
            "subtitle", parent=body, textColor=MUTED, fontSize=10.5, spaceAfter=10
        ),
        "h2": ParagraphStyle(
            "h2",
            parent=body,
            fontName="Vera-Bold",
            fontSize=12.5,
            leading=16,
            spaceBefore=12,
            spaceAfter=5,
        ),
        "label": ParagraphStyle("label", parent=body, fontName="Vera-Bold", textColor=MUTED),
        "source": ParagraphStyle(
            "source", parent=body, fontSize=8, leading=10.5, textColor=MUTED, spaceAfter=5
        ),
        "small": ParagraphStyle("small", parent=body, fontSize=8.5, leading=11),
        "cell": ParagraphStyle("cell", parent=body, fontSize=9, leading=11.5),
        "consent": ParagraphStyle("consent", parent=body, fontSize=9.5, leading=13, spaceAfter=5),
        "item": ParagraphStyle("item", parent=body, fontSize=9.5, leading=13),
        "consent_heading": ParagraphStyle(
            "consent_heading", parent=body, fontName="Vera-Bold", spaceBefore=4, spaceAfter=4
        ),
        "large": ParagraphStyle("large", parent=body, fontSize=12, leading=17),
        "instruction": ParagraphStyle(
            "instruction", parent=body, fontSize=12, leading=17, spaceAfter=5
        ),
        "hash": ParagraphStyle("hash", parent=body, fontName="Courier", fontSize=8.5, leading=11),
    }


def _p(text: str, style: str = "body") -> Paragraph:
    """A paragraph of plain text: whatever a record holds is escaped, never read as markup."""
    return Paragraph(escape(text), _styles()[style])


def _heading(text: str) -> Paragraph:
    return _p(text, "h2")


def _sources(items: Sequence[Mapping[str, Any]]) -> Paragraph | None:
    labels = [str(s.get("label") or s.get("source") or "") for s in items]
    labels = [label for label in labels if label]
    if not labels:
        return None
    word = "Source" if len(labels) == 1 else "Sources"
    return _p(f"{word}: {'; '.join(labels)}", "source")


def _facts(
    rows: Sequence[tuple[str, str | Flowable | list[Flowable]]], label_width: float = 40 * mm
) -> Table:
    """Label and value, one row each, like the chart's <dl class="facts">."""
    cells = [[_p(label, "label"), _p(v) if isinstance(v, str) else v] for label, v in rows]
    table = Table(cells, colWidths=[label_width, None], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("RIGHTPADDING", (0, 0), (-1, -1), 6),
                ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
            ]
        )
    )
    return table


def _bullets(paragraphs: Sequence[Flowable], size: float = 10) -> ListFlowable:
    return ListFlowable(
        [ListItem(p, leftIndent=14) for p in paragraphs],
        bulletType="bullet",
        start="•",
        bulletFontName=_fonts(),
        bulletFontSize=size,
        leftIndent=14,
    )


# Words for dates and money ------------------------------------------------------------------


def day(value: dt.date) -> str:
    """ "Tue 4 Mar 2025", without the platform-specific %-d."""
    return f"{value:%a} {value.day} {value:%b %Y}"


def moment(value: dt.datetime) -> str:
    """ "Tue 4 Mar 2025, 14:05 EST", in the zone `value` carries."""
    return f"{day(value)}, {value:%H:%M %Z}".rstrip()


def _iso_day(value: object) -> str:
    """A date (or the date part of an ISO date-time) from the plan, in words."""
    text = str(value or "")
    try:
        return day(dt.date.fromisoformat(text[:10]))
    except ValueError:
        return text


def money(currency: str, low: float, high: float | None = None) -> str:
    def amount(x: float) -> str:
        return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"

    if high is None or high == low:
        return f"{currency} {amount(low)}"
    return f"{currency} {amount(low)}–{amount(high)}"


def _sessions(low: int, high: int) -> str:
    count = str(low) if low == high else f"{low}–{high}"
    return f"{count} session{'' if count == '1' else 's'}"


# The shared page ----------------------------------------------------------------------------


def _decorate(canvas: Canvas, head: Letterhead, page: int, pages: int) -> None:
    """The clinic at the top, and when the document was made and the page at the bottom."""
    width, height = head.page_size
    left, right = 20 * mm, width - 20 * mm
    font = _fonts()
    canvas.saveState()
    canvas.setFillColor(INK)
    # A long clinic name is cut short rather than run into the title on the right.
    room = (right - left) * 0.65
    name = head.clinic
    while len(name) > 1 and pdfmetrics.stringWidth(name, "Vera-Bold", 11.5) > room:
        name = name[:-2].rstrip() + "…"
    canvas.setFont("Vera-Bold", 11.5)
    canvas.drawString(left, height - 15 * mm, name)
    canvas.setFont(font, 9)
    canvas.setFillColor(MUTED)
    if head.city:
        canvas.drawString(left, height - 19.5 * mm, head.city)
    canvas.drawRightString(right, height - 15 * mm, head.title)
    canvas.setStrokeColor(RULE)
    canvas.setLineWidth(0.6)
    canvas.line(left, height - 22 * mm, right, height - 22 * mm)
    canvas.line(left, 15 * mm, right, 15 * mm)
    canvas.setFont(font, 8)
    stamp = f"{head.generated_at:%Y-%m-%d %H:%M %Z}".strip()
    canvas.drawString(left, 10.5 * mm, f"Generated {stamp} · {head.clinic}")
    canvas.drawRightString(right, 10.5 * mm, f"Page {page} of {pages}")
    canvas.restoreState()


def _canvas_for(head: Letterhead) -> type[Canvas]:
    class PagedCanvas(Canvas):
        """Holds every page back until the end, so each footer can say "Page n of m"."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._held: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802 (reportlab's name)
            self._held.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            for number, state in enumerate(self._held, start=1):
                self.__dict__.update(state)
                _decorate(self, head, number, len(self._held))
                super().showPage()
            super().save()

    return PagedCanvas


class Group(list[Flowable]):
    """Flowables to keep on one page, such as a fact and its sources."""


def _keep_together(story: Sequence[Flowable | Group]) -> list[Flowable]:
    """Each group on one page, and each heading on the page of what follows it. A heading and
    a group become one KeepTogether: reportlab's keepWithNext does not reach past a list or a
    KeepTogether, and a KeepTogether inside another always breaks the page."""
    out: list[Flowable] = []
    heading: Paragraph | None = None
    for item in story:
        content = list(item) if isinstance(item, Group) else [item]
        if heading is not None:
            out.append(KeepTogether([heading, *content]))
            heading = None
        elif isinstance(item, Paragraph) and item.style.name == "h2":
            heading = item
        elif isinstance(item, Group):
            out.append(KeepTogether(content))
        else:
            out.append(item)
    if heading is not None:
        out.append(heading)
    return out


def _build(head: Letterhead, story: Sequence[Flowable | Group], subject: str) -> bytes:
    _fonts()
    out = io.BytesIO()
    document = SimpleDocTemplate(
        out,
        pagesize=head.page_size,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=30 * mm,
        bottomMargin=22 * mm,
        title=f"{head.title} · {head.clinic}",
        author=head.clinic,
        subject=subject,
        creator="mesoclinic",
    )
    document.build(_keep_together(story), canvasmaker=_canvas_for(head))
    return out.getvalue()


def _title(text: str, subtitle: str) -> list[Flowable | Group]:
    return [_p(text, "title"), _p(subtitle, "subtitle")]


# 1. The course plan and quote ----------------------------------------------------------------


def course_plan_pdf(
    head: Letterhead,
    *,
    patient: str,
    protocol: str,
    protocol_version: int,
    status: str,
    areas: Sequence[str],
    cadence_days: int,
    plan: Mapping[str, Any],
    progress: Mapping[str, Any],
    booked: Sequence[Mapping[str, Any]] = (),
) -> bytes:
    """The plan the patient takes home: the quote and insurance notice, what to expect with
    its sources, the visits booked, and when each session falls. `plan` is `Course.plan()`,
    `progress` is `Course.progress()` and `booked` is `planning.booked_visits()`."""
    cost: Mapping[str, Any] = plan.get("cost") or {}
    planned = int(cost.get("sessions") or progress.get("sessions_planned") or 0)
    tolerance = int(plan.get("tolerance_days") or 0)
    cadence = f"Every {cadence_days} days"
    if tolerance:
        cadence += f" (a session may fall {tolerance} days early or late)"
    story: list[Flowable | Group] = _title(
        "Course plan and quote", f"Prepared for {patient} on {day(head.generated_at)}"
    )
    rows: list[tuple[str, str | Flowable | list[Flowable]]] = [
        ("Treatment", f"{protocol} (protocol version {protocol_version})"),
        ("Areas", ", ".join(areas) or "—"),
        ("Cadence", cadence),
        ("Planned sessions", str(planned)),
        ("Progress", f"{progress.get('sessions_done', 0)} of {planned} sessions done · {status}"),
    ]
    upcoming = progress.get("next_session_window")
    if upcoming:
        rows.append(
            (
                "Next session",
                f"Between {_iso_day(upcoming.get('earliest'))} "
                f"and {_iso_day(upcoming.get('latest'))}",
            )
        )
    story.append(_facts(rows))

    story.append(_heading("Quote"))
    story.append(Group([_quote_table(cost, planned), Spacer(1, 4), *_cited(cost.get("sources"))]))
    if cost.get("note"):
        story.append(_p(str(cost["note"]), "small"))
    comparison = cost.get("comparison")
    if comparison:
        amount = money(str(comparison.get("currency", "")), comparison.get("amount", 0))
        line = _p(f"{comparison.get('label', 'For comparison')}: up to {amount}")
        story.append(Group([line, *_cited(comparison.get("sources"))]))

    insurance: Mapping[str, Any] = plan.get("insurance") or {}
    story.append(_heading("Insurance"))
    story.append(Group([_p(str(insurance.get("text", ""))), *_cited(insurance.get("sources"))]))

    story.append(_heading("What to expect"))
    for milestone in plan.get("milestones") or []:
        story.append(_milestone(milestone))
    for key in ("downtime", "durability"):
        fact: Mapping[str, Any] = plan.get(key) or {}
        if fact.get("text"):
            story.append(Group([_p(str(fact["text"])), *_cited(fact.get("sources"))]))
    maintenance: Mapping[str, Any] = plan.get("maintenance_window") or {}
    months = maintenance.get("every_months") or {}
    if months:
        low, high = months.get("min"), months.get("max")
        text = f"Maintenance: a session every {low if low == high else f'{low}–{high}'} months"
        if maintenance.get("from"):
            text += (
                "; if the sessions keep to this plan, the first falls between "
                f"{_iso_day(maintenance.get('from'))} and {_iso_day(maintenance.get('to'))}"
            )
        story.append(Group([_p(text + "."), *_cited(maintenance.get("sources"))]))

    before = plan.get("before_each_session") or []
    if before:
        # Each instruction once, then every source they cite, each once.
        cited = {str(s.get("source")): s for i in before for s in i.get("sources") or []}
        story.append(_heading("Before each session"))
        story.append(
            Group(
                [
                    _bullets([_p(str(i.get("text", ""))) for i in before]),
                    Spacer(1, 2),
                    *_cited(list(cited.values())),
                ]
            )
        )

    if booked:
        story.append(_heading("Your booked visits"))
        note = _p(
            "The dates and times booked for you. To change one, please call the clinic.",
            "small",
        )
        story.append(Group([note, Spacer(1, 4), _booked_table(booked)]))
    windows = plan.get("sessions") or []
    if windows:
        story.append(_heading("Planned session windows"))
        note = _p(
            "Each session is due on its date and may fall between the earliest and the latest "
            "day shown.",
            "small",
        )
        story.append(Group([note, Spacer(1, 4), _windows_table(windows)]))
    return _build(head, story, subject=f"Course plan: {protocol}")


def _cited(sources: Sequence[Mapping[str, Any]] | None) -> list[Flowable]:
    found = _sources(sources or [])
    return [found] if found is not None else []


def _quote_table(cost: Mapping[str, Any], planned: int) -> Table:
    currency = str(cost.get("currency", ""))
    rows = [
        ["", _p("From", "label"), _p("To", "label")],
        [
            _p("Per session"),
            _p(money(currency, cost.get("per_session_min", 0))),
            _p(money(currency, cost.get("per_session_max", 0))),
        ],
        [
            _p(f"Course of {planned} sessions"),
            _p(money(currency, cost.get("total_min", 0)), "label"),
            _p(money(currency, cost.get("total_max", 0)), "label"),
        ],
    ]
    table = Table(rows, colWidths=[60 * mm, 38 * mm, 38 * mm], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), SHADE),
                ("LINEBELOW", (0, 0), (-1, -1), 0.4, RULE),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("TOPPADDING", (0, 0), (-1, -1), 4),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
            ]
        )
    )
    return table


def _milestone(milestone: Mapping[str, Any]) -> Group:
    after = milestone.get("after_sessions") or {}
    label = str(milestone.get("label", ""))
    flags = []
    if milestone.get("single_source"):
        flags.append("a single source")
    if milestone.get("disputed"):
        flags.append("the sources disagree")
    line = f"<b>{escape(label)}</b>: after " + escape(
        _sessions(int(after.get("min", 0)), int(after.get("max", 0)))
    )
    if flags:
        line += f" <i>({escape('; '.join(flags))})</i>"
    return Group([Paragraph(line, _styles()["body"]), *_cited(milestone.get("sources"))])


def _booked_table(booked: Sequence[Mapping[str, Any]]) -> Table:
    rows: list[list[Any]] = [[_p(h, "label") for h in ("Visit", "Date and time", "With")]]
    for b in booked:
        start, end = b["starts_at"], b["ends_at"]
        rows.append(
            [
                _p(str(b["label"]), "cell"),
                Paragraph(
                    f"<b>{escape(day(start.date()))}</b>, {start:%H:%M}–{end:%H:%M}",
                    _styles()["cell"],
                ),
                _p(str(b["practitioner"]), "cell"),
            ]
        )
    table = Table(rows, colWidths=[40 * mm, 60 * mm, 50 * mm], hAlign="LEFT", repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), SHADE),
                ("LINEBELOW", (0, 0), (-1, -1), 0.3, RULE),
                ("TOPPADDING", (0, 0), (-1, -1), 2.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
            ]
        )
    )
    return table


def _windows_table(windows: Sequence[Mapping[str, Any]]) -> Table:
    rows: list[list[Any]] = [
        [_p(h, "label") for h in ("Session", "Earliest", "Due", "Latest")],
    ]
    for w in windows:
        rows.append(
            [
                _p(str(w.get("number", "")), "cell"),
                _p(_iso_day(w.get("earliest")), "cell"),
                Paragraph(f"<b>{escape(_iso_day(w.get('due')))}</b>", _styles()["cell"]),
                _p(_iso_day(w.get("latest")), "cell"),
            ]
        )
    table = Table(rows, colWidths=[20 * mm, 38 * mm, 38 * mm, 38 * mm], hAlign="LEFT", repeatRows=1)
    style = [
        ("BACKGROUND", (0, 0), (-1, 0), SHADE),
        ("LINEBELOW", (0, 0), (-1, -1), 0.3, RULE),
        ("TOPPADDING", (0, 0), (-1, -1), 2.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
    ]
    table.setStyle(TableStyle(style))
    return table


# 2. A signed consent -------------------------------------------------------------------------


def consent_pdf(
    head: Letterhead,
    *,
    patient: str,
    born: dt.date | None,
    text: str,
    text_sha256: str,
    template_version: int,
    signed_name: str,
    signed_at: dt.datetime,
    method: str,
    signature: str,
    witnessed_by: str,
    indication: str,
    areas: Sequence[str],
) -> bytes:
    """The consent text exactly as the patient signed it, then the signature: the drawn one if
    there is one, the typed name, when (`signed_at` in the clinic's zone), how, the version of
    the wording and the SHA-256 of the text, checked against the text printed above it."""
    subtitle = f"{patient}" + (f", born {day(born)}" if born else "")
    story: list[Flowable | Group] = _title("Consent to treatment", subtitle)
    scope = [("Consent text", f"Version {template_version}")]
    if indication:
        scope.append(("For", indication))
    if areas:
        scope.append(("Areas", ", ".join(areas)))
    story.append(_facts(scope))
    story.append(Spacer(1, 8))
    story.extend(_consent_text(text))

    story.append(_heading("Signature"))
    matches = hashlib.sha256(text.encode("utf-8")).hexdigest() == text_sha256
    check = (
        "It matches the text printed above."
        if matches
        else "WARNING: it does not match the text printed above."
    )
    block: list[Flowable] = [
        _signature_box(signature),
        Spacer(1, 6),
        _facts(
            [
                ("Signed by", signed_name),
                ("Signed at", moment(signed_at) + f" ({signed_at.tzinfo})"),
                ("Method", method),
                ("Witnessed by", witnessed_by or "—"),
                ("Text version", str(template_version)),
                (
                    "SHA-256 of the text",
                    [_p(text_sha256, "hash"), _p(check, "small")],
                ),
            ],
            label_width=44 * mm,
        ),
    ]
    story.append(Group(block))
    return _build(head, story, subject="Signed consent")


def consent_layout(text: str) -> list[tuple[str, str]]:
    """The stored consent text as ("heading" | "paragraph" | "item" | "break", words) parts,
    laid out for reading. Only the layout changes: the words are the ones the patient signed
    (and whose hash is printed).

    1. A blank line ends a block ("break").
    2. The text wraps its lines at a fixed width, so a line is joined to the next unless it
       ends a sentence, a label or a parenthesis.
    3. A line starting with "-" is a list item; an indented line after it continues it.
    4. A block's short first line that stands alone without closing punctuation ("Consent to
       mesotherapy") or ends in a parenthesis (a product and its supplier) is a heading.
    """
    parts: list[tuple[str, str]] = []
    for block in re.split(r"\n[ \t]*\n", text.strip()):
        raws = [raw for raw in block.splitlines() if raw.strip()]
        lines: list[str] = []
        for number, raw in enumerate(raws):
            line = raw.strip()
            bullet = _BULLET.match(raw)
            if number == 0 and not bullet and _is_heading(line, alone=len(raws) == 1):
                parts.append(("heading", line))
            elif bullet:
                if lines:
                    parts.append(("paragraph", " ".join(lines)))
                    lines = []
                parts.append(("item", raw[bullet.end() :].strip()))
            elif parts[-1:] and parts[-1][0] == "item" and not lines and raw[:1].isspace():
                parts[-1] = ("item", f"{parts[-1][1]} {line}")
            else:
                lines.append(line)
                if line[-1] in ".:;?!)":
                    parts.append(("paragraph", " ".join(lines)))
                    lines = []
        if lines:
            parts.append(("paragraph", " ".join(lines)))
        parts.append(("break", ""))
    return parts


def _consent_text(text: str) -> list[Flowable]:
    styles = _styles()
    out: list[Flowable] = []
    items: list[Flowable] = []
    for kind, words in consent_layout(text):
        if kind != "item" and items:
            out += [_bullets(items, size=9.5), Spacer(1, 5)]
            items = []
        if kind == "item":
            items.append(Paragraph(escape(words), styles["item"]))
        elif kind == "heading":
            out.append(Paragraph(escape(words), styles["consent_heading"]))
        elif kind == "paragraph":
            out.append(Paragraph(escape(words), styles["consent"]))
        else:
            out.append(Spacer(1, 3))
    if items:
        out.append(_bullets(items, size=9.5))
    return out


def _is_heading(line: str, *, alone: bool) -> bool:
    """A short line that ends without punctuation when it stands alone ("Consent to
    mesotherapy"), or with a parenthesis when a paragraph follows ("… (US FDA)")."""
    if len(line) > 90:
        return False
    return line.endswith(")") or (alone and line[-1] not in ".,:;?!")


def signature_strokes(path: str) -> list[list[tuple[float, float]]]:
    """The strokes of an SVG path of moves and lines ("M x y L x y ..."), as the signature pad
    writes it. Anything else in the string is ignored."""
    strokes: list[list[tuple[float, float]]] = []
    for count, found in enumerate(_PATH_STEP.finditer(path)):
        if count >= MAX_SIGNATURE_POINTS:
            break
        point = (float(found.group(2)), float(found.group(3)))
        if not all(math.isfinite(v) and abs(v) < 1e6 for v in point):
            continue
        if found.group(1) == "M" or not strokes:
            strokes.append([point])
        else:
            strokes[-1].append(point)
    return strokes


class _DrawnSignature(Flowable):
    """The signature pad's strokes, scaled to fit the box and kept as vectors, in one form
    XObject named "signature" (so it prints sharp at any size)."""

    def __init__(self, strokes: list[list[tuple[float, float]]], width: float, height: float):
        super().__init__()
        self.strokes = strokes
        self.width, self.height = width, height

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        return self.width, self.height

    def draw(self) -> None:
        points = [p for stroke in self.strokes for p in stroke]
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        span_x, span_y = max(max(xs) - min(xs), 1.0), max(max(ys) - min(ys), 1.0)
        pad = 6.0
        scale = min((self.width - 2 * pad) / span_x, (self.height - 2 * pad) / span_y)
        # Centre the signature; the pad's y grows downwards and the PDF's upwards.
        x0 = pad + (self.width - 2 * pad - span_x * scale) / 2
        y0 = pad + (self.height - 2 * pad - span_y * scale) / 2

        def place(p: tuple[float, float]) -> tuple[float, float]:
            return x0 + (p[0] - min(xs)) * scale, y0 + (max(ys) - p[1]) * scale

        canvas = self.canv
        canvas.beginForm(SIGNATURE_FORM, 0, 0, self.width, self.height)
        canvas.setStrokeColor(INK)
        canvas.setLineWidth(1.3)
        canvas.setLineCap(1)
        canvas.setLineJoin(1)
        for stroke in self.strokes:
            path = canvas.beginPath()
            path.moveTo(*place(stroke[0]))
            for p in stroke[1:] or stroke:
                path.lineTo(*place(p))
            canvas.drawPath(path, stroke=1, fill=0)
        canvas.endForm()
        canvas.doForm(SIGNATURE_FORM)


def _signature_image(data_url: str, width: float, height: float) -> Flowable | None:
    found = _DATA_URL.fullmatch(data_url.strip())
    if found is None or len(found.group(1)) > MAX_SIGNATURE_IMAGE_BYTES * 4 // 3 + 4:
        return None
    try:
        raw = base64.b64decode(re.sub(r"\s+", "", found.group(1)), validate=True)
        size_x, size_y = ImageReader(io.BytesIO(raw)).getSize()
    except (binascii.Error, ValueError):
        return None
    except Exception:  # reportlab and Pillow raise many kinds for an unreadable image.
        return None
    if size_x <= 0 or size_y <= 0:
        return None
    scale = min(width / size_x, height / size_y)
    return Image(io.BytesIO(raw), width=size_x * scale, height=size_y * scale)


def _signature_box(signature: str) -> Flowable:
    width, height = 90 * mm, 30 * mm
    drawn: Flowable | None = None
    note = ""
    if signature.strip():
        if signature.lstrip().lower().startswith("data:"):
            drawn = _signature_image(signature, width - 4 * mm, height - 4 * mm)
        else:
            strokes = signature_strokes(signature)
            drawn = _DrawnSignature(strokes, width, height) if strokes else None
        if drawn is None:
            note = "A drawn signature is on file but could not be shown."
    else:
        note = "No signature was drawn: the typed name below is the signature."
    inside: Flowable = drawn if drawn is not None else _p(note, "small")
    box = Table([[inside]], colWidths=[width], rowHeights=[height], hAlign="LEFT")
    box.setStyle(
        TableStyle(
            [
                ("BOX", (0, 0), (-1, -1), 0.6, RULE),
                ("ALIGN", (0, 0), (-1, -1), "CENTER"),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("LEFTPADDING", (0, 0), (-1, -1), 0 if drawn else 8),
                ("RIGHTPADDING", (0, 0), (-1, -1), 0 if drawn else 8),
                ("TOPPADDING", (0, 0), (-1, -1), 0),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 0),
            ]
        )
    )
    return box


# 3. A session's aftercare sheet --------------------------------------------------------------


def aftercare_pdf(
    head: Letterhead,
    *,
    first_name: str,
    performed_at: dt.datetime,
    session_number: int,
    protocol: str,
    items: Sequence[Mapping[str, Any]],
    call_line: str = "If something worries you, call the clinic.",
) -> bytes:
    """The sheet the patient takes home: each aftercare rule with its clock time already in
    the clinic's zone (`Session.aftercare()`), and whom to call."""
    story: list[Flowable | Group] = _title(
        f"Aftercare for {first_name}", f"Session {session_number} · {protocol}"
    )
    story.append(
        _p(
            f"Your session was at {performed_at:%H:%M} on {performed_at:%A} "
            f"{performed_at.day} {performed_at:%B %Y}.",
            "large",
        )
    )
    story.append(Spacer(1, 8))
    story.append(
        _bullets([_p(str(item.get("text", "")), "instruction") for item in items], size=12),
    )
    story.append(Spacer(1, 14))
    story.append(
        Paragraph(
            f"<b>{escape(call_line)}</b>",
            ParagraphStyle("call", parent=_styles()["large"]),
        )
    )
    where = head.clinic + (f", {head.city}" if head.city else "")
    story.append(_p(where, "body"))
    return _build(head, story, subject="Aftercare")


def progress_pdf(
    head: Letterhead,
    *,
    patient: str,
    protocol: str,
    protocol_version: int,
    progress: Any,
) -> bytes:
    """A course's progress report: each series drawn (outcomes.progress.drawing, the same
    picture as the chart's SVG) with its expected trajectory and its source, then a table of
    the numbers and the change from baseline in points and per cent."""
    from mesoclinic.outcomes import logic
    from mesoclinic.outcomes import progress as charts

    found: logic.Progress = progress
    story: list[Flowable | Group] = _title(
        f"Progress report for {patient}",
        f"{protocol} · protocol v{protocol_version} · {found.sessions_done} of "
        f"{found.sessions_planned} sessions done",
    )
    if not found.series:
        story.append(_p("No measurement has been recorded on this course yet."))
    if found.no_trajectory:
        story.append(_p(found.no_trajectory, "small"))
    for s in found.series:
        group = Group()
        group.append(_heading(s.label))
        group.append(charts.drawing(s, found, font=_fonts()))
        caption = (
            charts.trajectory_caption(s.trajectory)
            if s.trajectory
            else charts.no_trajectory_caption(s, found)
        )
        group.append(_p(caption, "source"))
        group.append(_p(f"Change from baseline: {logic.describe_change(s)}."))
        rows = [["Date", "Sessions done", f"Value ({s.unit})", "Change", "Change %"]]
        base = s.baseline.value
        for p in s.points:
            change = p.value - base
            percent = f"{(change * 100 / base):+.1f} %" if base else "–"
            rows.append([day(p.day), str(p.sessions), f"{p.value}", f"{change:+}", percent])
        table = Table([[_p(c, "cell") for c in r] for r in rows], hAlign="LEFT", repeatRows=1)
        table.setStyle(
            TableStyle(
                [
                    ("BACKGROUND", (0, 0), (-1, 0), SHADE),
                    ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        group.append(table)
        story.append(group)
    story.append(Spacer(1, 10))
    story.append(
        _p(
            "The expected line is the protocol's figure with its source, drawn from this "
            "course's baseline; it is what the source reports, not a promise for this patient.",
            "source",
        )
    )
    return _build(head, story, subject="Progress report")


@dataclass(frozen=True)
class InvoiceLineText:
    description: str
    quantity: int
    unit: str
    tax_rate: str
    net: str


def invoice_pdf(
    head: Letterhead,
    *,
    title: str,
    issued: str,
    patient: str,
    corrects: str,
    lines: Sequence[InvoiceLineText],
    totals: Sequence[tuple[str, str]],
    note: str,
) -> bytes:
    """An invoice or a credit note as issued: every amount already written in its currency
    (billing.money.words), so the document says exactly what the pages say."""
    story: list[Flowable | Group] = _title(title, f"Issued {issued}")
    story.append(_p(f"To {patient}.{(' ' + corrects) if corrects else ''}", "large"))
    story.append(Spacer(1, 8))
    rows: list[list[Any]] = [
        [_p(label, "label") for label in ("What", "Quantity", "Unit price", "Tax", "Before tax")]
    ]
    rows += [
        [
            _p(line.description),
            _p(str(line.quantity)),
            _p(line.unit),
            _p(line.tax_rate),
            _p(line.net),
        ]
        for line in lines
    ]
    rows += [["", "", "", _p(label, "label"), _p(amount, "label")] for label, amount in totals]
    table = Table(
        rows, colWidths=[62 * mm, 20 * mm, 30 * mm, 28 * mm, 30 * mm], hAlign="LEFT", repeatRows=1
    )
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), SHADE),
                ("LINEBELOW", (0, 0), (-1, -1), 0.4, RULE),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("TOPPADDING", (0, 0), (-1, -1), 4),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
            ]
        )
    )
    story.append(table)
    if note:
        story.append(Spacer(1, 8))
        story.append(_p(note))
    story.append(Spacer(1, 10))
    story.append(_p(head.clinic + (f", {head.city}" if head.city else "")))
    return _build(head, story, subject=title)


def quote_pdf(
    head: Letterhead,
    *,
    title: str,
    text: str,
    text_sha256: str,
    accepted: Sequence[tuple[str, str]],
    signature: str | None,
) -> bytes:
    """A quote exactly as the patient reads and signs it, then, once accepted, the signature,
    who signed and when, and the SHA-256 of the text, checked against the text above it."""
    story: list[Flowable | Group] = _title(title, "Quote")
    story.extend(_consent_text(text))
    story.append(_heading("Acceptance"))
    matches = hashlib.sha256(text.encode("utf-8")).hexdigest() == text_sha256
    check = (
        "It matches the text printed above."
        if matches
        else "WARNING: it does not match the text printed above."
    )
    facts: list[tuple[str, Any]] = list(accepted) or [("State", "Not accepted yet.")]
    facts.append(("SHA-256 of the text", [_p(text_sha256, "hash"), _p(check, "small")]))
    block: list[Flowable] = []
    if signature is not None:
        block += [_signature_box(signature), Spacer(1, 6)]
    block.append(_facts(facts, label_width=44 * mm))
    story.append(Group(block))
    return _build(head, story, subject=title)
