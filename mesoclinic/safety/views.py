"""The infection-watch questionnaire, for patients, with no login.

Opening the link only shows the questions: mail scanners and link previews fetch every link in
an email, so nothing is recorded until the patient submits the form, which POSTs (with Django's
CSRF check). The answer is recorded once; the link then shows what was recorded. A link that
was tampered with, cut short or has expired gets a page that names no one.
"""

from __future__ import annotations

from contextlib import suppress

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from mesoclinic.access import access_watch_prompt, audit_view, caller_for_watch_link
from mesoclinic.safety import actions, emails, links, logic
from mesoclinic.safety.forms import WatchAnswerForm


@require_http_methods(["GET", "HEAD", "POST"])
def watch(request: HttpRequest, token: str) -> HttpResponse:
    try:
        prompt_id = links.read_token(token)
    except links.BadLink as bad:
        reason = "expired" if bad.expired else "invalid"
        return render(request, "safety/watch_closed.html", {"reason": reason}, status=400)
    try:
        prompt = access_watch_prompt(caller_for_watch_link(prompt_id), prompt_id)
    except Http404:
        return render(request, "safety/watch_closed.html", {"reason": "gone"}, status=404)
    if request.method != "POST":
        audit_view(
            caller_for_watch_link(prompt_id), prompt, patient_id=prompt.session.course.patient_id
        )
    form = WatchAnswerForm(request.POST or None)
    if request.method == "POST" and prompt.answered_at is None and form.is_valid():
        # Answered a moment ago, from another tab: the page after the redirect shows that one.
        with suppress(actions.AlreadyAnswered):
            actions.do_answer_watch(prompt.pk, form.answers())
        return redirect(request.path)
    context = {**emails.context(prompt), "form": form, "prompt": prompt}
    if prompt.answered_at is not None:
        context["recorded"] = [
            (q.text, "Yes" if prompt.answers.get(q.key) else "No") for q in logic.QUESTIONS
        ]
        return render(request, "safety/watch_answered.html", context)
    return render(request, "safety/watch.html", context)
