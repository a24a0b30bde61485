"""Finding a patient by name, phone, email or date of birth."""

from __future__ import annotations

import datetime as dt

from django.db.models import Q, QuerySet

from mesoclinic.accounts.models import Clinic
from mesoclinic.patients.models import Patient


def search(clinic: Clinic, query: str) -> QuerySet[Patient]:
    """Patients of `clinic` matching every word of `query` in a name, the phone or the email,
    or born on the date it gives (YYYY-MM-DD)."""
    qs = Patient.objects.filter(clinic=clinic)
    query = query.strip()
    if not query:
        return qs
    try:
        return qs.filter(date_of_birth=dt.date.fromisoformat(query))
    except ValueError:
        pass
    for word in query.split()[:5]:
        qs = qs.filter(
            Q(first_name__icontains=word)
            | Q(last_name__icontains=word)
            | Q(email__icontains=word)
            | Q(phone__icontains=word)
        )
    return qs
