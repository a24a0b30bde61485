"""The infection-watch questions in the portal: the questionnaires the clinic sends at 2, 4, 8
and 12 weeks after each session (safety/watch.py), listed for the signed-in patient and
answered here through the same action as the emailed link's page (safety/actions.
do_answer_watch), with the patient's own login as the user and "portal" as the channel.

A questionnaire can be answered from the day it is due for as long as its emailed link works
(safety/logic.LINK_MAX_AGE), and once: the link page and this page share the one answer."""

from __future__ import annotations

import datetime as dt
from contextlib import suppress

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_safe

from mesoclinic.access import (
    OWN,
    access_patient,
    access_watch_prompt,
    watch_prompts_for,
)
from mesoclinic.portal.views import patient_caller, patient_page
from mesoclinic.safety import actions, emails, logic
from mesoclinic.safety.forms import WatchAnswerForm
from mesoclinic.safety.models import WatchPrompt

VIA = "portal"


def is_open(prompt: WatchPrompt, now: dt.datetime) -> bool:
    """Whether the patient may answer it now: due, not answered, within the link's life."""
    return (
        prompt.answered_at is None
        and prompt.due_at <= now
        and now - prompt.due_at <= logic.LINK_MAX_AGE
    )


def _weeks_words() -> str:
    """ "2, 4, 8 and 12" from the watch's weeks."""
    weeks = [str(w) for w in logic.WATCH_WEEKS]
    return weeks[0] if len(weeks) == 1 else f"{', '.join(weeks[:-1])} and {weeks[-1]}"


@patient_page
@require_safe
def questions(request: HttpRequest) -> HttpResponse:
    caller = patient_caller(request)
    # Reading the page is one audited view of the patient's own records.
    patient = access_patient(caller, caller.patient.pk, OWN, view=True)  # type: ignore[union-attr]
    now = timezone.now()
    prompts = list(
        watch_prompts_for(caller, OWN)
        .select_related("session__course", "clinic")
        .order_by("-due_at")[:100]
    )
    due = [p for p in prompts if p.due_at <= now]
    upcoming = [p for p in prompts if p.due_at > now]
    return render(
        request,
        "portal/watch_list.html",
        {
            "page": "watch",
            "patient": patient,
            "clinic": patient.clinic,
            "open": [p for p in due if is_open(p, now)],
            "answered": [p for p in due if p.answered_at is not None],
            "next": min(upcoming, key=lambda p: p.due_at) if upcoming else None,
            "weeks": _weeks_words(),
        },
    )


@patient_page
@require_http_methods(["GET", "POST"])
def answer(request: HttpRequest, prompt_id: int) -> HttpResponse:
    caller = patient_caller(request)
    prompt = access_watch_prompt(caller, prompt_id, OWN, view=request.method == "GET")
    now = timezone.now()
    form = WatchAnswerForm(request.POST or None)
    if request.method == "POST" and is_open(prompt, now) and form.is_valid():
        # Answered a moment ago from the emailed link: the page after the redirect shows it.
        with suppress(actions.AlreadyAnswered):
            actions.do_answer_watch(prompt.pk, form.answers(), user=request.user, via=VIA)
        return redirect("portal:watch_answer", prompt.pk)
    context = {
        **emails.context(prompt),
        "page": "watch",
        "form": form,
        "prompt": prompt,
        "open": is_open(prompt, now),
        "due": prompt.due_at <= now,
    }
    if prompt.answered_at is not None:
        context["recorded"] = [
            (q.text, "Yes" if prompt.answers.get(q.key) else "No") for q in logic.QUESTIONS
        ]
    return render(request, "portal/watch.html", context, status=400 if form.errors else 200)
