"""Visitors' questions from the clinic's public site: clinical staff answer them and choose
which the site shows (mesoclinic/site/)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from mesoclinic.access import access_question, questions_for
from mesoclinic.site.actions import do_answer
from mesoclinic.web.context import CLINICAL, caller


class AnswerForm(forms.Form):
    answer = forms.CharField(
        label="Answer",
        max_length=4000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Shown on the public site under the question when published. Give general "
        "information only: never a patient's details.",
    )
    published = forms.BooleanField(label="Show on the public site", required=False)


@login_required
def questions(request: HttpRequest) -> HttpResponse:
    listed = list(questions_for(caller(request), CLINICAL).order_by("published", "-asked_at")[:200])
    forms_by_question = [
        (q, AnswerForm(initial={"answer": q.answer, "published": q.published}, prefix=f"q{q.pk}"))
        for q in listed
    ]
    return render(request, "web/questions.html", {"page": "questions", "rows": forms_by_question})


@login_required
@require_POST
def answer(request: HttpRequest, question_id: int) -> HttpResponse:
    question = access_question(caller(request), question_id, CLINICAL)
    form = AnswerForm(request.POST, prefix=f"q{question.pk}")
    if form.is_valid():
        try:
            do_answer(
                question,
                answer=form.cleaned_data["answer"],
                published=form.cleaned_data["published"],
                user=request.user,
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                for error in errors:
                    form.add_error(field, error)
        else:
            messages.success(
                request,
                "Answer saved and shown on the public site."
                if form.cleaned_data["published"]
                else "Answer saved. The question is not shown on the public site.",
            )
            return redirect("web:site_questions")
    listed = list(questions_for(caller(request), CLINICAL).order_by("published", "-asked_at")[:200])
    rows = [
        (
            q,
            form
            if q.pk == question.pk
            else AnswerForm(
                initial={"answer": q.answer, "published": q.published}, prefix=f"q{q.pk}"
            ),
        )
        for q in listed
    ]
    return render(request, "web/questions.html", {"page": "questions", "rows": rows}, status=400)
