"""Finding a patient the way people type: a name in any order ("Last, First"), with or without
accents or curly apostrophes; a phone in any format; a date of birth in the clinic's format, in
ISO, or the year alone; an email."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from mesoclinic.accounts.models import Clinic
from mesoclinic.lib.formats import date_order
from mesoclinic.patients import normal
from mesoclinic.patients.models import Patient


def search(clinic: Clinic, query: str) -> QuerySet[Patient]:
    """The clinic's patients (not merged into another record) matching `query`: born on the
    date or in the year it gives, or with that phone number, or with every word of it in
    the name or the email."""
    qs = Patient.objects.filter(clinic=clinic, merged_into__isnull=True)
    query = query.strip()
    if not query:
        return qs
    day = normal.parse_day(query, date_order(clinic))
    if day is not None:
        return qs.filter(date_of_birth=day)
    year = normal.parse_year(query)
    if year is not None:
        return qs.filter(date_of_birth__year=year)
    if normal.looks_like_phone(query):
        number = normal.e164(query, normal.region_of(clinic.phone))
        # A whole number matches exactly; a part of one (the last digits) matches within.
        found = Q(phone_e164=number) if number else Q()
        return qs.filter(found | Q(phone_e164__contains=normal.digits(query)))
    for word in normal.name_words(query)[:5]:
        match = Q(search_key__contains=word) | Q(email__icontains=word)
        if normal.digits(word):
            match |= Q(phone_e164__contains=normal.digits(word))
        qs = qs.filter(match)
    return qs
