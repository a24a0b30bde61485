"""The side-effect diary: a patient reports a side effect after one of their sessions.

The report goes through the staff's own action (courses/actions.do_report_side_effect) with
`portal` as the channel, so it gets the status staff get from the protocol: expected until a
time, beyond expected, or urgent; anything not expected opens the clinic's follow-up at once.
An optional photo goes through the staff's photo action (outcomes/photo_actions), bounded as
it streams in, kept with the clinical photos and shown to staff on the side effect. The
side effect and its photo are written together or not at all.

What the patient is told after reporting is in the protocol's words (the side effect's label
and expected time, with its source by the article's title) and the product's own sentences
for whom to call; nothing here makes a medical claim of its own."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_safe

from mesoclinic.access import (
    OWN,
    access_course,
    access_patient,
    access_side_effect,
    courses_for,
    side_effects_for,
)
from mesoclinic.courses import actions, logic
from mesoclinic.courses.models import Course, Session, SideEffect
from mesoclinic.outcomes import photo_actions
from mesoclinic.outcomes.uploads import bounded_photo_uploads, refused_uploads
from mesoclinic.portal.views import patient_caller, patient_page
from mesoclinic.protocols.describe import duration, source_words
from mesoclinic.protocols.vocab import Area

VIA = "portal"

# The grade scale staff use (CTCAE v5.0, injection site reaction; web/forms.CTCAE_GRADES), in
# plain words for the patient. Grade 5 (death) is not one a patient reports.
PATIENT_GRADES = [
    (1, "Mild: tender, warm, red or itchy"),
    (2, "Moderate: painful or swollen"),
    (3, "Severe: an open sore, or skin that turns dark or breaks down"),
    (4, "Life-threatening: I need urgent help now"),
]


class DiaryForm(forms.Form):
    session = forms.TypedChoiceField(label="After which session", coerce=int)
    kind = forms.ChoiceField(label="What you notice")
    description = forms.CharField(
        label="Describe it",
        max_length=2000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='Needed when you choose "Something else".',
    )
    onset_at = forms.DateTimeField(
        label="When it started",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    grade = forms.TypedChoiceField(
        label="How bad it is", coerce=int, choices=PATIENT_GRADES, widget=forms.RadioSelect
    )
    area = forms.ChoiceField(label="Where on your body")
    photo = forms.ImageField(
        label="A photo (optional)",
        required=False,
        help_text="The photo is kept with your clinical records and seen only by the clinic.",
    )

    def __init__(self, course: Course, sessions: list[Session], *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.course = course
        self.sessions = {s.pk: s for s in sessions}
        tz = course.clinic.tz
        self.fields["session"].choices = [  # type: ignore[attr-defined]
            (s.pk, f"Session {s.number}, {s.performed_at.astimezone(tz):%a %d %b %Y}")
            for s in sessions
        ]
        kinds = [(k.key, k.label) for k in course.spec.side_effects]
        kinds.append((SideEffect.OTHER, "Something else"))
        self.fields["kind"].choices = kinds  # type: ignore[attr-defined]
        labels = dict(Area.choices)
        self.fields["area"].choices = [(a, labels.get(a, a)) for a in course.areas]  # type: ignore[attr-defined]
        self.fields["area"].help_text = "Where the photo is of; needed only with a photo."
        self.fields["onset_at"].help_text = f"The date and time in {course.clinic.name}'s clock."
        self.fields["area"].required = False
        most = settings.PHOTO_MAX_BYTES // (1024 * 1024)
        self.fields["photo"].help_text = (
            f"Up to {most} MB. The photo is kept with your clinical records and seen only by "
            "the clinic."
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        session = self.sessions.get(data.get("session") or 0)
        onset = data.get("onset_at")
        if data.get("kind") == SideEffect.OTHER and not (data.get("description") or "").strip():
            self.add_error("description", "Tell us in a few words what you notice.")
        if onset is not None:
            if onset > timezone.now() + dt.timedelta(minutes=1):
                self.add_error("onset_at", "This time is still to come: give when it started.")
            elif session is not None and onset < session.performed_at:
                self.add_error("onset_at", "This is before the session: give when it started.")
        if data.get("photo") and data.get("area") not in self.course.areas:
            self.add_error("area", "Choose where on your body the photo is of.")
        return data


# The action's keys, in the form's field names; the action's own words are for staff.
_PATIENT_WORDS = {
    "kind": "Choose what you notice from the list.",
    "description": "Tell us in a few words what you notice.",
    "onset_at": "Give when it started: not before the session, and not a time still to come.",
    "grade": "Choose how bad it is.",
}


def _put_errors(form: DiaryForm, exc: ValidationError) -> None:
    found = exc.error_dict if hasattr(exc, "error_dict") else {"": exc.error_list}
    for key, errors in found.items():
        if key in _PATIENT_WORDS:
            form.add_error(key, _PATIENT_WORDS[key])
        elif key == "consent" or key == "taken_at":
            form.add_error(
                "photo",
                "You have not agreed to clinical photos, so the clinic cannot keep one. You "
                'can agree under "Before your visit", or send your report without a photo.',
            )
        else:
            # A photo refused by its size or kind: the photo checks' words follow its name.
            form.add_error("photo", "This photo " + " ".join(" ".join(e.messages) for e in errors))


def _my_course(request: HttpRequest, course_id: int) -> Course:
    return access_course(patient_caller(request), course_id, OWN)


@patient_page
@require_safe
def diary(request: HttpRequest) -> HttpResponse:
    """Every side effect the patient has reported or the clinic has recorded, newest first,
    with a way to report one for each course that has had a session."""
    caller = patient_caller(request)
    patient = access_patient(caller, caller.patient.pk, OWN, view=True)  # type: ignore[union-attr]
    courses = list(
        courses_for(caller, OWN).filter(sessions__isnull=False).distinct().order_by("-created_at")
    )
    effects = list(
        side_effects_for(caller, OWN)
        .select_related("session__course__protocol", "session__course__clinic")
        .order_by("-onset_at")[:100]
    )
    return render(
        request,
        "portal/diary.html",
        {
            "page": "diary",
            "patient": patient,
            "clinic": patient.clinic,
            "courses": courses,
            "effects": [advice(e) for e in effects],
        },
    )


@bounded_photo_uploads
@patient_page
@require_http_methods(["GET", "POST"])
def report(request: HttpRequest, course_id: int) -> HttpResponse:
    course = _my_course(request, course_id)
    caller = patient_caller(request)
    patient = access_patient(caller, course.patient_id, OWN, view=request.method == "GET")
    sessions = list(course.sessions.order_by("-number"))
    for s in sessions:
        s.course = course  # the action reads the protocol through it
    # From a session's aftercare on the home page, that session; else the latest.
    chosen = request.GET.get("session", "")
    initial = {
        "session": next((s.pk for s in sessions if str(s.pk) == chosen), None)
        or (sessions[0].pk if sessions else None),
        "onset_at": timezone.localtime(timezone.now()).replace(second=0, microsecond=0),
        "area": course.areas[0] if course.areas else None,
    }
    form = DiaryForm(course, sessions, request.POST or None, request.FILES or None, initial=initial)
    refused = refused_uploads(request) if request.method == "POST" else {}
    for message in refused.values():
        form.add_error("photo", f"This photo {message}")
    if request.method == "POST" and sessions and not refused and form.is_valid():
        data = form.cleaned_data
        session = form.sessions[data["session"]]
        image = data.get("photo")
        try:
            with transaction.atomic():
                # A button pressed twice on a phone (or a form sent again) reports once: the
                # session's row is locked while the same report is looked for.
                Session.objects.select_for_update().filter(pk=session.pk).first()
                effect = _same_report(session, data, request.user)
                if effect is None:
                    effect = actions.do_report_side_effect(
                        session,
                        kind=data["kind"],
                        description=data["description"],
                        onset_at=data["onset_at"],
                        grade=data["grade"],
                        user=request.user,
                        via=VIA,
                    )
                elif image:
                    image = None  # The first press stored its photo, if it had one.
                if image:
                    photo_actions.do_upload_photos(
                        course,
                        area=data["area"],
                        images={"front": photo_actions.read_upload(image, "photo")},
                        session=session,
                        side_effect=effect,
                        user=request.user,
                        via=VIA,
                    )
        except ValidationError as exc:
            _put_errors(form, exc)
        else:
            return redirect("portal:side_effect", effect.pk)
    return render(
        request,
        "portal/diary_report.html",
        {
            "page": "diary",
            "patient": patient,
            "clinic": course.clinic,
            "course": course,
            "form": form,
            "has_sessions": bool(sessions),
        },
        status=400 if form.errors else 200,
    )


# How long an identical report counts as the same one sent again.
RESENT_WITHIN = dt.timedelta(minutes=10)


def _same_report(session: Session, data: dict[str, Any], user: Any) -> SideEffect | None:
    """The side effect this patient reported a moment ago with exactly these answers."""
    return (
        SideEffect.objects.filter(
            session=session,
            reported_by=user,
            kind=data["kind"],
            description=data["description"],
            onset_at=data["onset_at"],
            grade=data["grade"],
            reported_at__gte=timezone.now() - RESENT_WITHIN,
        )
        .order_by("pk")
        .first()
    )


def advice(effect: SideEffect) -> dict[str, Any]:
    """What the patient is told about one side effect: its status and what to do."""
    course = effect.session.course
    spec = course.spec
    kind = spec.side_effect(effect.kind)
    return {
        "effect": effect,
        "label": kind.label if kind is not None else (effect.description or "Something else"),
        "status": effect.status,
        "expected": effect.status == logic.EXPECTED,
        "beyond": effect.status == logic.BEYOND_EXPECTED,
        "urgent": effect.status == logic.URGENT,
        "lasts": duration(kind.expected_hours.v)
        if kind is not None and kind.expected_hours is not None
        else None,
        "sources": [s.text for s in source_words(kind.source)] if kind is not None else [],
        "grade_words": dict(PATIENT_GRADES).get(effect.grade, ""),
    }


@patient_page
@require_safe
def side_effect(request: HttpRequest, effect_id: int) -> HttpResponse:
    effect = access_side_effect(patient_caller(request), effect_id, OWN, view=True)
    course = effect.session.course
    return render(
        request,
        "portal/diary_effect.html",
        {
            "page": "diary",
            "patient": course.patient,
            "clinic": course.clinic,
            "course": course,
            "row": advice(effect),
            "photos": list(effect.photos.order_by("taken_at")),
        },
    )
