"""State changes for courses. Each runs in one transaction and writes an audit row."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, audit
from mesoclinic.billing import packages
from mesoclinic.courses import logic, rules
from mesoclinic.courses.models import (
    AllergyReading,
    AllergyTest,
    AllergyTestInjection,
    Amendment,
    Course,
    FollowUp,
    GateRecords,
    Session,
    SessionInjection,
    SessionRefused,
    SideEffect,
    gather_facts,
    gather_facts_many,
    lot_facts_of,
    patient_allergies,
    planned_products_of,
)
from mesoclinic.formulary import stock
from mesoclinic.formulary.models import TEST_DOSE_ML, Lot, Product, Vial, products_for
from mesoclinic.patients.models import Patient
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.scheduling.actions import link_session


def not_future(moment: dt.datetime, field: str) -> None:
    # Clinics chart after the fact, so the past is fine; the future is not.
    if moment > timezone.now() + dt.timedelta(minutes=1):
        raise ValidationError({field: "cannot be in the future."})


def do_plan_course(
    patient: Patient,
    protocol: ClinicProtocol,
    *,
    indication: str,
    areas: list[str],
    cadence_days: int,
    planned_sessions: int,
    first_session_on: dt.date | None = None,
    products: list[Product] | None = None,
    user: Any,
    via: str = "api",
) -> Course:
    """Plan a course on the protocol's current version. Session 1 defaults to the first day
    after the allergy wait, counted from now in the clinic's time zone. The products default
    to the clinic's active products for the indication (formulary.products_for)."""
    clinic = patient.clinic
    if products is None:
        products = products_for(clinic.pk, indication)
    check_products(products, clinic.pk, indication)
    if first_session_on is None:
        wait = dt.timedelta(hours=protocol.spec.allergy_test.wait_hours.v)
        first_session_on = (timezone.now() + wait).astimezone(clinic.tz).date()
    course = Course(
        clinic=clinic,
        patient=patient,
        protocol=protocol,
        indication=indication,
        areas=areas,
        cadence_days=cadence_days,
        planned_sessions=planned_sessions,
        first_session_on=first_session_on,
        created_by=user,
    )
    course.clean()
    with transaction.atomic():
        course.save()
        course.products.set(products)
        audit(
            clinic=clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=course,
            patient_id=patient.pk,
            via=via,
            protocol=protocol.key,
            version=protocol.version,
            products=sorted(p.pk for p in products),
        )
    return course


def check_products(products: list[Product], clinic_id: int, indication: str) -> None:
    """A course's products: the clinic's own, active, and listed for the indication."""
    for p in products:
        if p.clinic_id != clinic_id:
            raise ValidationError({"products": f"product {p.pk} is not in this clinic."})
        if not p.active:
            raise ValidationError({"products": f"{p.name} is no longer in use."})
        if not p.is_for(indication):
            raise ValidationError(
                {"products": f"{p.name} is not listed in the formulary for this indication."}
            )


def do_stop_course(course: Course, reason: str, user: Any, via: str = "api") -> Course:
    """Stop a course, for a reason, once. The status is read again under a row lock, so two
    people stopping it at the same moment stop it (and write its history) once; the other is
    told it is already stopped."""
    if not reason.strip():
        raise ValidationError({"reason": "Say why the course is stopped."})
    with transaction.atomic():
        locked = Course.objects.select_for_update().get(pk=course.pk)
        if locked.status == Course.Status.STOPPED:
            course.status, course.stop_reason = locked.status, locked.stop_reason
            raise ValidationError({"status": "The course is already stopped."})
        course.status = Course.Status.STOPPED
        course.stop_reason = reason.strip()
        course.save(update_fields=["status", "stop_reason"])
        audit(
            clinic=course.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=course,
            patient_id=course.patient_id,
            via=via,
            status="stopped",
            reason=reason,
        )
    return course


@dataclass(frozen=True)
class TestInjection:
    lot: Lot
    site: str
    given_at: dt.datetime | None = None
    vial: Vial | None = None
    volume_ml: Decimal = TEST_DOSE_ML


def do_give_allergy_test(
    course: Course,
    *,
    given_at: dt.datetime,
    injections: list[TestInjection],
    user: Any,
    notes: str = "",
    via: str = "api",
) -> AllergyTest:
    not_future(given_at, "given_at")
    wanted = course.spec.allergy_test.injections.v
    if len(injections) != wanted:
        raise ValidationError(
            {"injections": f"this protocol's allergy test is {wanted} injections."}
        )
    for n, i in enumerate(injections):
        if i.lot.product.clinic_id != course.clinic_id:
            raise ValidationError({"injections": f"lot {i.lot.pk} is not in this clinic."})
        if i.given_at is not None:
            # The two test injections are one visit: each within an hour of the test's time.
            not_future(i.given_at, f"injections.{n}.given_at")
            if abs(i.given_at - given_at) > dt.timedelta(hours=1):
                raise ValidationError(
                    {f"injections.{n}.given_at": "must be within an hour of the test's given_at."}
                )
    if course.status == Course.Status.STOPPED:
        raise ValidationError({"course": "The course is stopped."})
    for n, i in enumerate(injections):
        if not Decimal("0.01") <= i.volume_ml <= Decimal("5"):
            raise ValidationError({f"injections.{n}.volume_ml": "must be 0.01 to 5 mL."})
    lots = [i.lot for i in injections]
    chosen = chosen_vials(injections)
    stock.check_chosen(chosen, given_at)
    with transaction.atomic():
        # The vials are locked, so a single-dose vial goes to one of two patients at once.
        plan = stock.vial_plan(lots, given_at, chosen, lock=True)
        refused = rules.allergy_test_refusals(
            lot_facts_of(lots),
            given_at,
            course.clinic.tz,
            patient_allergies(course.patient),
            planned_products_of([course.pk]).get(course.pk),
            stock.vial_facts(plan, course.patient_id),
        )
        if refused:
            raise SessionRefused(refused, subject="allergy test")
        test = AllergyTest.objects.create(
            course=course, given_at=given_at, given_by=user, notes=notes
        )
        vials = stock.draw(
            plan,
            [(i.lot.pk, i.volume_ml) for i in injections],
            patient_id=course.patient_id,
            moment=given_at,
            user=user,
            allergy_test=test,
        )
        for i in injections:
            AllergyTestInjection.objects.create(
                test=test,
                lot=i.lot,
                vial=vials[i.lot.pk],
                volume_ml=i.volume_ml,
                site=i.site,
                given_at=i.given_at or given_at,
                given_by=user,
            )
        audit(
            clinic=course.clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=test,
            patient_id=course.patient_id,
            via=via,
        )
    return test


def do_read_allergy_test(
    test: AllergyTest,
    *,
    read_at: dt.datetime,
    result: str,
    user: Any,
    notes: str = "",
    via: str = "api",
) -> AllergyReading:
    """Record a reading. A reading before the test is readable (the protocol's wait after it
    was given) is refused at entry, naming the time it becomes readable: stored, it would read
    as "No reaction" when nothing could yet be seen."""
    not_future(read_at, "read_at")
    if read_at < test.given_at:
        raise ValidationError({"read_at": "cannot be before the test was given."})
    readable_from = test.readable_from()
    if read_at < readable_from:
        raise ValidationError(
            {
                "read_at": "is too early: the test can be read from "
                f"{rules.when_words(readable_from, test.course.clinic.tz)}."
            }
        )
    if result not in AllergyReading.Result.values:
        raise ValidationError(
            {"result": f"must be one of {', '.join(AllergyReading.Result.values)}."}
        )
    with transaction.atomic():
        reading = AllergyReading.objects.create(
            test=test, read_at=read_at, read_by=user, result=result, notes=notes
        )
        audit(
            clinic=test.course.clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=reading,
            patient_id=test.course.patient_id,
            via=via,
            result=result,
        )
    return reading


@dataclass(frozen=True)
class InjectionInput:
    area: str
    lot: Lot
    volume_ml: Decimal
    technique: str = SessionInjection.Technique.NAPPAGE
    # The opened vial it is drawn from; None: formulary.stock.vial_plan chooses.
    vial: Vial | None = None
    # A new vial of the lot is opened for it, though one is open (the chart's form offers it).
    new_vial: bool = False


def chosen_vials(injections: list[Any]) -> dict[int, Vial]:
    """The vials the caller named, by lot id: one vial for each lot of a session or test."""
    chosen: dict[int, Vial] = {}
    for i in injections:
        if i.vial is None:
            continue
        if chosen.setdefault(i.lot.pk, i.vial).pk != i.vial.pk:
            raise ValidationError(
                {"vial": f"draw every injection of {i.lot} from one vial in a visit."}
            )
    return chosen


def fresh_lots(injections: list[Any], chosen: dict[int, Vial]) -> set[int]:
    """The lots for which the caller asked for a new vial, by id. A lot is drawn from one vial
    in a visit, so it cannot also name an open one."""
    fresh = {i.lot.pk for i in injections if getattr(i, "new_vial", False)}
    both = sorted(fresh & set(chosen))
    if both:
        lot = chosen[both[0]].lot
        raise ValidationError({"vial": f"draw every injection of {lot} from one vial in a visit."})
    return fresh


def check_injections(course: Course, injections: list[InjectionInput]) -> None:
    """Input checks for a session's injections, shared by the API and the admin."""
    if not injections:
        raise ValidationError({"injections": "a session records at least one injection."})
    for i in injections:
        if i.area not in course.areas:
            allowed = ", ".join(course.areas)
            raise ValidationError(
                {"injections": f"area {i.area!r} is not in this course ({allowed})."}
            )
        if i.lot.product.clinic_id != course.clinic_id:
            raise ValidationError({"injections": f"lot {i.lot.pk} is not in this clinic."})


def check_session(
    course: Course,
    performed_at: dt.datetime,
    practitioner: Any,
    lots: list[Lot],
    vials: tuple[rules.VialFacts, ...] | None = None,
) -> list[rules.Refusal]:
    """Every reason a session may not go ahead, for the pre-session check and for charting.
    `vials`: the opened vials the lots are drawn from; None: the vials the lots would be
    drawn from at `performed_at` (formulary.stock.vial_plan)."""
    if vials is None:
        plan = stock.vial_plan(lots, performed_at)
        vials = stock.vial_facts(plan, course.patient_id)
    facts = gather_facts(course, performed_at, practitioner, lots)
    return rules.refusals(replace(facts, vials=vials))


def check_sessions(
    courses: list[Course],
    performed_at: dt.datetime,
    practitioner: Any,
    lots: list[Lot],
    practitioner_of: Mapping[int, Any] | None = None,
    records: GateRecords | None = None,
) -> dict[int, list[rules.Refusal]]:
    """`check_session` for several courses of one patient, by course id: the chart asks it
    for every open course, with the facts read once for all of them (or handed over in
    `records`), each course judged for its own practitioner (`practitioner_of`, by course
    id) where one is named."""
    facts = gather_facts_many(
        courses, performed_at, practitioner, lots, None, practitioner_of, records
    )
    return {pk: rules.refusals(f) for pk, f in facts.items()}


def do_record_session(
    course: Course,
    *,
    performed_at: dt.datetime,
    practitioner: Any,
    injections: list[InjectionInput],
    stimulants_avoided: bool,
    numbing_cream: bool = False,
    burning_minutes: int | None = None,
    discomfort_minutes: int | None = None,
    notes: str = "",
    override_codes: list[str] | None = None,
    override_reason: str = "",
    user: Any,
    via: str = "api",
) -> Session:
    """Chart a session, or refuse it with every reason.

    1. Check the input: a time not in the future, areas inside the course, lots of the clinic.
    2. Lock the course row, so two sessions charted at once are checked one after the other.
    3. Run every gate over all the lots; drop the refusals that a valid override lifts.
    4. If any remain, write a refusal audit row and raise SessionRefused with all of them.
    5. Save the session and its injections (each save re-runs the gates), move the course's
       status on, and audit the session and any override.
    """
    override_codes = sorted(set(override_codes or []))
    not_future(performed_at, "performed_at")
    check_injections(course, injections)
    if override_codes and not override_reason.strip():
        raise ValidationError({"override_reason": "an override must say why."})
    if practitioner.membership_in(course.clinic) is None:
        raise ValidationError({"practitioner": "is not a member of this clinic."})

    refused: list[rules.Refusal] = []
    with transaction.atomic():
        course = (
            Course.objects.select_for_update()
            .select_related("clinic", "patient", "protocol")
            .get(pk=course.pk)
        )
        if course.status == Course.Status.STOPPED:
            raise ValidationError({"course": "The course is stopped; no more sessions."})
        lots = [i.lot for i in injections]
        chosen = chosen_vials(injections)
        fresh = fresh_lots(injections, chosen)
        stock.check_chosen(chosen, performed_at)
        # The vials are locked, so a single-dose vial goes to one of two patients charted at once.
        plan = stock.vial_plan(lots, performed_at, chosen, lock=True, fresh=fresh)
        found = check_session(
            course, performed_at, practitioner, lots, stock.vial_facts(plan, course.patient_id)
        )
        bad = rules.invalid_overrides(found, override_codes)
        if bad:
            raise ValidationError(
                {"override_codes": f"{', '.join(bad)} cannot be overridden for this session."}
            )
        refused = rules.blocking(found, override_codes)
        if not refused:
            session = _save_session(
                course,
                performed_at,
                practitioner,
                injections,
                stimulants_avoided,
                numbing_cream,
                burning_minutes,
                discomfort_minutes,
                notes,
                override_codes,
                override_reason,
                user,
                via,
                found,
                plan,
            )
            # The visit it was given at is done, in the same transaction.
            link_session(session, user=user, via=via)
    if refused:
        audit(
            clinic=course.clinic,
            user=user,
            action=AuditEvent.Action.REFUSE,
            object_type="courses.Session",
            patient_id=course.patient_id,
            via=via,
            course=course.pk,
            reasons=[r.as_dict() for r in refused],
        )
        raise SessionRefused(refused)
    return session


def _save_session(
    course: Course,
    performed_at: dt.datetime,
    practitioner: Any,
    injections: list[InjectionInput],
    stimulants_avoided: bool,
    numbing_cream: bool,
    burning_minutes: int | None,
    discomfort_minutes: int | None,
    notes: str,
    override_codes: list[str],
    override_reason: str,
    user: Any,
    via: str,
    found: list[rules.Refusal],
    plan: dict[int, stock.Draw],
) -> Session:
    course_sessions = course.sessions.filter(kind=Session.Kind.COURSE).count()
    maintenance = course.status in (Course.Status.COMPLETED, Course.Status.MAINTENANCE)
    session = Session(
        course=course,
        number=_make_room_for(course, performed_at),
        kind=Session.Kind.MAINTENANCE if maintenance else Session.Kind.COURSE,
        performed_at=performed_at,
        practitioner=practitioner,
        numbing_cream=numbing_cream,
        stimulants_avoided=stimulants_avoided,
        burning_minutes=burning_minutes,
        discomfort_minutes=discomfort_minutes,
        notes=notes,
        override_codes=override_codes,
        override_reason=override_reason.strip(),
        overridden_by=user if override_codes else None,
    )
    session.save()
    # Each injection is drawn from its lot's vial, opened here when none is, and the stock
    # goes down by its volume.
    vials = stock.draw(
        plan,
        [(i.lot.pk, i.volume_ml) for i in injections],
        patient_id=course.patient_id,
        moment=performed_at,
        user=user,
        session=session,
    )
    for i in injections:
        SessionInjection(
            session=session,
            area=i.area,
            lot=i.lot,
            vial=vials[i.lot.pk],
            volume_ml=i.volume_ml,
            technique=i.technique,
        ).save()
    # A session of a course sold as a package uses one of its prepaid sessions.
    redeemed = packages.redeem(session)
    if maintenance:
        course.status = Course.Status.MAINTENANCE
    elif course_sessions + 1 >= course.planned_sessions:
        course.status = Course.Status.COMPLETED
    else:
        course.status = Course.Status.ACTIVE
    course.save(update_fields=["status"])
    audit(
        clinic=course.clinic,
        user=user,
        action=AuditEvent.Action.CREATE,
        obj=session,
        patient_id=course.patient_id,
        via=via,
        lots=[i.lot.pk for i in injections],
        vials=sorted({v.pk for v in vials.values()}),
        package=redeemed.package_id if redeemed else None,
    )
    if override_codes:
        audit(
            clinic=course.clinic,
            user=user,
            action=AuditEvent.Action.OVERRIDE,
            obj=session,
            patient_id=course.patient_id,
            via=via,
            codes=override_codes,
            reason=override_reason.strip(),
            refusals=[r.as_dict() for r in found if r.code in override_codes],
        )
    return session


def _make_room_for(course: Course, performed_at: dt.datetime) -> int:
    """The number of a new session at `performed_at`: numbers follow time, not the order of
    charting. The sessions charted after it move up by one, the latest first, so that the
    unique (course, number) constraint holds after every row. The caller holds the course's
    row lock, so no other session of the course is numbered meanwhile."""
    later = course.sessions.filter(performed_at__gt=performed_at).order_by("-number")
    for pk, number in later.values_list("pk", "number"):
        Session.objects.filter(pk=pk).update(number=number + 1)
    return course.sessions.filter(performed_at__lte=performed_at).count() + 1


def _sync_follow_up(effect: SideEffect) -> FollowUp | None:
    """Open a follow-up when the status is not expected and none is open; raise its
    priority when the side effect has become urgent."""
    if effect.status == logic.EXPECTED:
        return None
    priority = (
        FollowUp.Priority.URGENT if effect.status == logic.URGENT else FollowUp.Priority.ROUTINE
    )
    reason = (
        f"{effect.kind.replace('_', ' ').capitalize()} (grade {effect.grade}) is "
        f"{effect.status.replace('_', ' ')}"
    )
    open_one = effect.follow_ups.filter(status=FollowUp.Status.OPEN).first()
    if open_one is None:
        return FollowUp.objects.create(
            clinic=effect.session.course.clinic,
            session=effect.session,
            side_effect=effect,
            priority=priority,
            reason=reason,
        )
    if open_one.priority != priority:
        open_one.priority, open_one.reason = priority, reason
        open_one.save(update_fields=["priority", "reason"])
    return open_one


def check_reaction(
    session: Session, grade: int, onset_at: dt.datetime, *, grade_field: str
) -> None:
    """What any reaction after a session must be, a side effect or a serious adverse event:
    a CTCAE grade from 1 to 5, and an onset neither in the future nor before the session."""
    if not 1 <= grade <= 5:
        raise ValidationError({grade_field: "a CTCAE grade is between 1 and 5."})
    not_future(onset_at, "onset_at")
    if onset_at < session.performed_at:
        raise ValidationError({"onset_at": "cannot be before the session."})


def do_report_side_effect(
    session: Session,
    *,
    kind: str,
    onset_at: dt.datetime,
    grade: int,
    resolved_at: dt.datetime | None = None,
    description: str = "",
    user: Any,
    via: str = "api",
) -> SideEffect:
    spec = session.course.spec
    known = [s.key for s in spec.side_effects]
    if kind != SideEffect.OTHER and kind not in known:
        raise ValidationError({"kind": f"must be one of {', '.join(known)} or other."})
    if kind == SideEffect.OTHER and not description.strip():
        raise ValidationError({"description": "describe a side effect of kind other."})
    check_reaction(session, grade, onset_at, grade_field="grade")
    if resolved_at is not None:
        not_future(resolved_at, "resolved_at")
        if resolved_at < onset_at:
            raise ValidationError({"resolved_at": "cannot be before the onset."})
    effect = SideEffect(
        session=session,
        kind=kind,
        description=description,
        onset_at=onset_at,
        resolved_at=resolved_at,
        grade=grade,
        reported_by=user,
    )
    effect.refresh_status()
    with transaction.atomic():
        effect.save()
        _sync_follow_up(effect)
        audit(
            clinic=session.course.clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=effect,
            patient_id=session.course.patient_id,
            via=via,
            status=effect.status,
        )
    return effect


def do_resolve_side_effect(
    effect: SideEffect, resolved_at: dt.datetime, user: Any, via: str = "api"
) -> SideEffect:
    not_future(resolved_at, "resolved_at")
    if resolved_at < effect.onset_at:
        raise ValidationError({"resolved_at": "cannot be before the onset."})
    with transaction.atomic():
        effect.resolved_at = resolved_at
        effect.refresh_status()
        effect.save(update_fields=["resolved_at", "status", "expected_until"])
        _sync_follow_up(effect)
        audit(
            clinic=effect.session.course.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=effect,
            patient_id=effect.session.course.patient_id,
            via=via,
            resolved_at=resolved_at.isoformat(),
            status=effect.status,
        )
    return effect


def do_sweep_side_effects(now: dt.datetime | None = None) -> int:
    """Move unresolved side effects that have outlasted their expected duration to beyond
    expected, and open their follow-ups. Returns how many changed. Run on a schedule."""
    now = now or timezone.now()
    changed = 0
    pending = SideEffect.objects.filter(
        resolved_at__isnull=True, status=logic.EXPECTED, expected_until__lt=now
    ).select_related("session__course__protocol", "session__course__clinic")
    for effect in pending:
        with transaction.atomic():
            if effect.refresh_status(now):
                effect.save(update_fields=["status", "expected_until"])
                _sync_follow_up(effect)
                changed += 1
    return changed


def do_close_follow_up(
    follow_up: FollowUp, outcome: str, user: Any, via: str = "api", resolution: str = ""
) -> FollowUp:
    """Close an open follow-up with what was done, whatever opened it (a side effect, a serious
    adverse event, an infection-watch answer), and how it ended (FollowUp.Resolution). A
    closed one is never closed again: that would rewrite who closed it, when and how."""
    if not outcome.strip():
        raise ValidationError({"outcome": "say what was done."})
    if resolution and resolution not in FollowUp.Resolution.values:
        raise ValidationError({"resolution": "choose how the follow-up ended."})
    with transaction.atomic():
        locked = FollowUp.objects.select_for_update().only("status").get(pk=follow_up.pk)
        if locked.status != FollowUp.Status.OPEN:
            raise ValidationError("This follow-up is already closed.")
        follow_up.status = FollowUp.Status.DONE
        follow_up.outcome = outcome.strip()
        follow_up.closed_at = timezone.now()
        follow_up.closed_by = user
        follow_up.resolution = resolution
        follow_up.save(update_fields=["status", "outcome", "closed_at", "closed_by", "resolution"])
        audit(
            clinic=follow_up.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=follow_up,
            patient_id=follow_up.session.course.patient_id,
            via=via,
            status="done",
            resolution=resolution,
        )
    return follow_up


def do_complete_course(course: Course, user: Any, via: str = "api") -> Course:
    """Mark a course completed before its planned number of sessions (the clinician and the
    patient are satisfied); later sessions are maintenance."""
    with transaction.atomic():
        locked = Course.objects.select_for_update().get(pk=course.pk)
        if locked.status in (Course.Status.STOPPED, Course.Status.COMPLETED):
            raise ValidationError(
                {"status": f"The course is already {locked.get_status_display().lower()}."}
            )
        if not locked.sessions.exists():
            raise ValidationError(
                {"status": "A course with no session cannot be completed; stop it instead."}
            )
        course.status = Course.Status.COMPLETED
        course.save(update_fields=["status"])
        audit(
            clinic=course.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=course,
            patient_id=course.patient_id,
            via=via,
            status="completed",
        )
    return course


# Amendments: a charted session never changes; a correction is a row of its own.
AMENDABLE = {
    "notes": "Notes",
    "burning_minutes": "Burning (minutes)",
    "discomfort_minutes": "Discomfort (minutes)",
}


def current_value(session: Session, field: str) -> str:
    """The field's value as amended last, or as charted."""
    last = session.amendments.filter(field=field).order_by("-amended_at", "-id").first()
    if last is not None:
        return last.amended
    value = getattr(session, field)
    return "" if value is None else str(value)


def do_amend_session(
    session: Session, *, field: str, value: str, reason: str, user: Any, via: str = "api"
) -> Amendment:
    """Amend one field of a charted session with a reason. The session row stays as charted;
    the amendment keeps the value before and after, who, when and why, and is audited."""
    if field not in AMENDABLE:
        raise ValidationError({"field": "choose what to correct."})
    if not reason.strip():
        raise ValidationError({"reason": "say why the record is corrected."})
    value = value.strip()
    if field != "notes" and value and not (value.isdigit() and int(value) <= 1440):
        raise ValidationError({"value": "enter a number of minutes from 0 to 1440, or nothing."})
    with transaction.atomic():
        locked = Session.objects.select_for_update().get(pk=session.pk)
        before = current_value(locked, field)
        if before == value:
            raise ValidationError({"value": "this is the value already on record."})
        amendment = Amendment.objects.create(
            clinic=session.course.clinic,
            session=locked,
            field=field,
            original=before,
            amended=value,
            reason=reason.strip(),
            amended_by=user,
        )
        audit(
            clinic=session.course.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=session,
            patient_id=session.course.patient_id,
            via=via,
            amended=field,
            original=before,
            value=value,
            reason=reason.strip(),
        )
    return amendment


def do_amend_allergy_reading(
    reading: AllergyReading, *, result: str, reason: str, user: Any, via: str = "api"
) -> Amendment:
    """Correct an allergy test reading's result with a reason. The reading holds the corrected
    result, so the session gate reads it; the result as first charted stays on the row
    (charted_result) and each amendment keeps the result before and after, who, when and why.
    Audited."""
    if result not in AllergyReading.Result.values:
        raise ValidationError({"result": "choose the corrected result."})
    if not reason.strip():
        raise ValidationError({"reason": "say why the record is corrected."})
    clinic = reading.test.course.clinic
    with transaction.atomic():
        locked = AllergyReading.objects.select_for_update().get(pk=reading.pk)
        before = locked.result
        if before == result:
            raise ValidationError({"result": "this is the result already on record."})
        amendment = Amendment.objects.create(
            clinic=clinic,
            allergy_reading=locked,
            field="result",
            original=before,
            amended=result,
            reason=reason.strip(),
            amended_by=user,
        )
        locked.charted_result = locked.charted_result or before
        locked.result = result
        locked.save(update_fields=["result", "charted_result"])
        audit(
            clinic=clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=locked,
            patient_id=reading.test.course.patient_id,
            via=via,
            amended="result",
            original=before,
            value=result,
            reason=reason.strip(),
        )
    reading.result, reading.charted_result = locked.result, locked.charted_result
    return amendment
