"""Changes the public site makes: a visitor asks a question; staff answer and publish it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, Clinic, acting, audit
from mesoclinic.site.models import Question

# At most this many questions from one network address in an hour, per clinic.
QUESTIONS_PER_HOUR = 5


def do_ask(clinic: Clinic, *, text: str, name: str, email: str, address: str) -> Question:
    """Keep a visitor's question, or raise ValidationError when the address has asked too
    many in the last hour. The count and the insert happen under a lock on the clinic's row,
    so parallel questions from one address are all counted."""
    with transaction.atomic():
        Clinic.objects.select_for_update().filter(pk=clinic.pk).first()
        since = timezone.now() - dt.timedelta(hours=1)
        recent = Question.objects.filter(clinic=clinic, address=address, asked_at__gte=since)
        if recent.count() >= QUESTIONS_PER_HOUR:
            raise ValidationError(
                {"text": "You have asked several questions in the last hour. Please try later."}
            )
        return Question.objects.create(
            clinic=clinic, text=text, name=name.strip(), email=email, address=address
        )


def do_answer(question: Question, *, answer: str, published: bool, user: Any) -> Question:
    """Save the clinic's answer and whether the site shows it. A question without an answer
    is never shown."""
    answer = answer.strip()
    if published and not answer:
        raise ValidationError({"answer": "Write an answer before publishing the question."})
    with transaction.atomic():
        question = Question.objects.select_for_update().get(pk=question.pk)
        before = {"answer": question.answer, "published": question.published}
        question.answer = answer
        question.published = published
        if answer and answer != before["answer"]:
            question.answered_by = acting(user)
            question.answered_at = timezone.now()
        question.save()
        audit(
            clinic=question.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=question,
            via="web",
            published=published,
            answered=bool(answer),
        )
    return question
