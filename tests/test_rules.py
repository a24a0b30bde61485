"""The session gate (courses/rules.py) as a pure function over hand-built facts.

Each test starts from facts that pass every gate, changes one thing, and checks that exactly
that reason appears; and, the other way round, that the closest safe variant passes. No
database is used.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from typing import Any

from mesoclinic.courses import rules
from mesoclinic.courses.rules import (
    AllergyTestFacts,
    LotFacts,
    ReadingFacts,
    Refusal,
    SessionFacts,
    VialFacts,
)
from mesoclinic.protocols.vocab import RefusalCode

UTC = dt.UTC
PARIS = zoneinfo.ZoneInfo("Europe/Paris")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
TOKYO = zoneinfo.ZoneInfo("Asia/Tokyo")

# Tuesday 12 May 2026, 10:00 in Paris (UTC+2 in summer).
SESSION_AT = dt.datetime(2026, 5, 12, 8, 0, tzinfo=UTC)
GIVEN_AT = SESSION_AT - dt.timedelta(days=3)

LIDOCAINE = 11
CAFFEINE = 12
PHOSPHATIDYLCHOLINE = 13


def lot(**changes: Any) -> LotFacts:
    base = LotFacts(
        lot_id=1,
        label="Lipo mix lot L100",
        product_id=1,
        expires_on=dt.date(2027, 1, 31),
        recalled=False,
        recall_reason="",
        ingredients={PHOSPHATIDYLCHOLINE: "Phosphatidylcholine", CAFFEINE: "Caffeine"},
    )
    return dataclasses.replace(base, **changes)


def vial(**changes: Any) -> VialFacts:
    """A multi-dose vial opened 30 days before the session: past its 28 days."""
    opened = SESSION_AT - dt.timedelta(days=30)
    base = VialFacts(
        label="Vial 2 of Lipo mix lot L100",
        opened_at=opened,
        beyond_use_at=opened + dt.timedelta(days=28),
        beyond_use_days=28,
        single_dose=False,
        other_patient=False,
    )
    return dataclasses.replace(base, **changes)


def read(
    hours_after: float, result: str = "none", given_at: dt.datetime = GIVEN_AT
) -> ReadingFacts:
    return ReadingFacts(read_at=given_at + dt.timedelta(hours=hours_after), result=result)


def allergy(*readings: ReadingFacts, given_at: dt.datetime = GIVEN_AT) -> AllergyTestFacts:
    return AllergyTestFacts(given_at=given_at, readings=tuple(readings))


def facts(**changes: Any) -> SessionFacts:
    """Facts for a session that passes every gate, with `changes` applied."""
    base = SessionFacts(
        performed_at=SESSION_AT,
        tz=PARIS,
        screening_result="eligible",
        screening_hard_stops=(),
        has_consent=True,
        products_without_current_consent=(),
        allergy_tests=(allergy(read(25)),),
        allergy_wait_hours=24,
        other_sessions_at=(SESSION_AT - dt.timedelta(days=7),),
        min_interval_days=5,
        lots=(lot(),),
        patient_allergies={},
        practitioner_name="Dr Rivera",
        licence_expires_on=dt.date(2027, 6, 30),
        overridable=frozenset({"interval_too_short"}),
    )
    return dataclasses.replace(base, **changes)


def codes(f: SessionFacts) -> list[str]:
    return [r.code for r in rules.refusals(f)]


def only(f: SessionFacts, code: str) -> Refusal:
    """The single refusal of `f`, which must have `code`."""
    found = rules.refusals(f)
    assert [r.code for r in found] == [code]
    return found[0]


class RulesTests:
    def test_it_lets_a_safe_session_go_ahead(self) -> None:
        assert rules.refusals(facts()) == []

    # Screening.

    def test_it_refuses_session_without_screening(self) -> None:
        r = only(facts(screening_result=None), "no_screening")
        assert r.message == "The patient has not been screened."

    def test_it_accepts_a_screening_with_cautions_only(self) -> None:
        assert codes(facts(screening_result="caution")) == []

    def test_it_refuses_session_after_screening_hard_stop(self) -> None:
        f = facts(
            screening_result="ineligible",
            screening_hard_stops=("Are you pregnant, or could you be?", "Aged 17: under 18."),
        )
        r = only(f, "screening_hard_stop")
        assert "Are you pregnant, or could you be?" in r.message
        assert "Aged 17: under 18." in r.message

    def test_it_does_not_report_a_hard_stop_when_none_was_answered(self) -> None:
        assert "screening_hard_stop" not in codes(facts(screening_hard_stops=()))

    # Consent.

    def test_it_refuses_session_without_consent(self) -> None:
        r = only(facts(has_consent=False), "no_consent")
        assert "consent" in r.message

    def test_it_refuses_session_when_consent_does_not_cover_current_text(self) -> None:
        f = facts(products_without_current_consent=("Lidocaine 1%", "Lipo mix"))
        r = only(f, "consent_outdated")
        assert "Lidocaine 1%" in r.message and "Lipo mix" in r.message

    def test_it_accepts_consent_that_covers_every_product(self) -> None:
        assert codes(facts(has_consent=True, products_without_current_consent=())) == []

    # Allergy test.

    def test_it_refuses_session_without_allergy_test(self) -> None:
        r = only(facts(allergy_tests=()), "allergy_test_missing")
        assert "allergy test" in r.message

    def test_it_refuses_session_before_allergy_read(self) -> None:
        r = only(facts(allergy_tests=(allergy(),)), "allergy_test_unread")
        # Given on Sat 9 May 2026 at 08:00 UTC, which is 10:00 in Paris; readable 24 h later.
        assert "10:00 on Sat 9 May 2026" in r.message
        assert "10:00 on Sun 10 May 2026" in r.message

    def test_it_accepts_a_read_allergy_test(self) -> None:
        assert "allergy_test_unread" not in codes(facts(allergy_tests=(allergy(read(30)),)))

    def test_it_only_looks_at_the_latest_allergy_test_for_a_reading(self) -> None:
        older = allergy(read(25), given_at=GIVEN_AT - dt.timedelta(days=30))
        assert codes(facts(allergy_tests=(older, allergy()))) == ["allergy_test_unread"]
        newer_read = allergy(read(25))
        unread_older = allergy(given_at=GIVEN_AT - dt.timedelta(days=30))
        assert codes(facts(allergy_tests=(unread_older, newer_read))) == []

    def test_it_refuses_allergy_reading_one_minute_before_24_hours(self) -> None:
        early = ReadingFacts(GIVEN_AT + dt.timedelta(hours=23, minutes=59), "none")
        r = only(facts(allergy_tests=(allergy(early),)), "allergy_read_too_early")
        assert "at least 24 h after" in r.message
        # The message must not round 23 h 59 min up to the very wait it falls short of.
        assert "23 h 59 min after it was given" in r.message
        assert "from 10:00 on Sun 10 May 2026" in r.message

    def test_it_accepts_allergy_reading_at_exactly_24_hours(self) -> None:
        exact = ReadingFacts(GIVEN_AT + dt.timedelta(hours=24), "none")
        assert codes(facts(allergy_tests=(allergy(exact),))) == []

    def test_it_accepts_a_second_reading_after_the_wait(self) -> None:
        f = facts(allergy_tests=(allergy(read(2), read(26)),))
        assert codes(f) == []

    def test_it_follows_the_protocols_wait(self) -> None:
        f = facts(allergy_tests=(allergy(read(30)),), allergy_wait_hours=48)
        assert codes(f) == ["allergy_read_too_early"]
        assert codes(dataclasses.replace(f, allergy_wait_hours=30)) == []

    def test_it_refuses_session_after_local_allergy_reaction(self) -> None:
        f = facts(allergy_tests=(allergy(read(25, "local")),), overridable=frozenset())
        r = only(f, "allergy_reaction")
        assert "local reaction" in r.message
        assert r.overridable is False

    def test_a_local_reaction_is_overridable_when_the_protocol_allows_it(self) -> None:
        f = facts(
            allergy_tests=(allergy(read(25, "local")),),
            overridable=frozenset({"allergy_reaction"}),
        )
        assert only(f, "allergy_reaction").overridable is True

    def test_a_systemic_reaction_is_never_overridable(self) -> None:
        f = facts(
            allergy_tests=(allergy(read(25, "systemic")),),
            overridable=frozenset({"allergy_reaction", "interval_too_short"}),
        )
        r = only(f, "allergy_reaction")
        assert r.overridable is False
        assert "systemic" in r.message and "never" in r.message
        assert rules.blocking([r], ["allergy_reaction"]) == [r]
        assert rules.invalid_overrides([r], ["allergy_reaction"]) == ["allergy_reaction"]

    def test_a_reaction_on_an_earlier_test_still_refuses(self) -> None:
        earlier = allergy(read(25, "systemic"), given_at=GIVEN_AT - dt.timedelta(days=20))
        f = facts(allergy_tests=(earlier, allergy(read(25, "none"))))
        assert codes(f) == ["allergy_reaction"]

    def test_it_accepts_an_allergy_test_with_no_reaction(self) -> None:
        assert "allergy_reaction" not in codes(facts(allergy_tests=(allergy(read(25, "none")),)))

    def test_the_allergy_wait_is_24_real_hours_across_daylight_saving(self) -> None:
        # Paris moves its clocks forward at 02:00 on Sunday 29 March 2026: 10:00 on Saturday
        # to 10:00 on Sunday is only 23 hours.
        given = dt.datetime(2026, 3, 28, 10, 0, tzinfo=PARIS)
        sunday_ten = ReadingFacts(dt.datetime(2026, 3, 29, 10, 0, tzinfo=PARIS), "none")
        f = facts(
            performed_at=dt.datetime(2026, 3, 30, 10, 0, tzinfo=PARIS),
            other_sessions_at=(),
            allergy_tests=(allergy(sunday_ten, given_at=given),),
        )
        r = only(f, "allergy_read_too_early")
        assert "read 23 h after it was given" in r.message
        assert "from 11:00 on Sun 29 Mar 2026" in r.message
        sunday_eleven = ReadingFacts(dt.datetime(2026, 3, 29, 11, 0, tzinfo=PARIS), "none")
        later = dataclasses.replace(f, allergy_tests=(allergy(sunday_eleven, given_at=given),))
        assert codes(later) == []

    # Interval.

    def test_it_refuses_session_too_soon_after_the_last(self) -> None:
        last = SESSION_AT - dt.timedelta(days=5) + dt.timedelta(minutes=1)
        r = only(facts(other_sessions_at=(last,)), "interval_too_short")
        assert "Only 4 days after the session at" in r.message
        assert "at least 5 days" in r.message
        # The earlier session was at 08:01 UTC on 7 May: 10:01 in Paris.
        assert "10:01 on Thu 7 May 2026" in r.message
        assert r.overridable is True

    def test_a_gap_under_a_day_is_said_in_hours_never_as_0_days(self) -> None:
        last = SESSION_AT - dt.timedelta(hours=3, minutes=10)
        r = only(facts(other_sessions_at=(last,)), "interval_too_short")
        assert "Only 3 h 10 min after the session at" in r.message
        assert "0 days" not in r.message
        one = only(
            facts(other_sessions_at=(SESSION_AT - dt.timedelta(days=1),)), "interval_too_short"
        )
        assert "Only 1 day after" in one.message

    def test_it_accepts_a_session_exactly_the_minimum_interval_after_the_last(self) -> None:
        last = SESSION_AT - dt.timedelta(days=5)
        assert codes(facts(other_sessions_at=(last,))) == []

    def test_it_refuses_session_charted_too_close_before_a_later_one(self) -> None:
        # Charted between two sessions: far enough after the first, too close to the next.
        first = SESSION_AT - dt.timedelta(days=8)
        second = SESSION_AT + dt.timedelta(days=4)
        r = only(facts(other_sessions_at=(first, second)), "interval_too_short")
        assert "Only 4 days before the session at" in r.message

    def test_it_accepts_a_session_charted_between_two_far_enough_apart(self) -> None:
        first = SESSION_AT - dt.timedelta(days=6)
        second = SESSION_AT + dt.timedelta(days=5)
        assert codes(facts(other_sessions_at=(first, second))) == []

    def test_it_names_the_interval_once_even_when_both_neighbours_are_too_close(self) -> None:
        near = (SESSION_AT - dt.timedelta(days=1), SESSION_AT + dt.timedelta(days=1))
        assert codes(facts(other_sessions_at=near)) == ["interval_too_short"]

    def test_interval_is_not_overridable_unless_the_protocol_says_so(self) -> None:
        f = facts(other_sessions_at=(SESSION_AT - dt.timedelta(days=1),), overridable=frozenset())
        assert only(f, "interval_too_short").overridable is False

    def test_the_first_session_has_no_interval_to_keep(self) -> None:
        assert codes(facts(other_sessions_at=())) == []

    def test_a_weekly_session_at_the_same_local_hour_keeps_the_interval_across_dst(self) -> None:
        # With no tolerance the minimum is a full week. 10:00 on 24 March to 10:00 on 31 March
        # in Paris is one hour short of 7 x 24 h, yet it is exactly when the session is due.
        last = dt.datetime(2026, 3, 24, 9, 0, tzinfo=UTC)  # 10:00 in Paris, UTC+1
        due = dt.datetime(2026, 3, 31, 8, 0, tzinfo=UTC)  # 10:00 in Paris, UTC+2
        f = facts(
            performed_at=due,
            other_sessions_at=(last,),
            min_interval_days=7,
            allergy_tests=(allergy(read(25), given_at=last - dt.timedelta(days=3)),),
        )
        assert codes(f) == []
        a_minute_early = dataclasses.replace(f, performed_at=due - dt.timedelta(minutes=1))
        assert codes(a_minute_early) == ["interval_too_short"]

    # Lots.

    def test_a_lot_is_usable_on_its_expiry_date(self) -> None:
        f = facts(lots=(lot(expires_on=dt.date(2026, 5, 12)),))
        assert codes(f) == []

    def test_it_refuses_a_lot_the_day_after_it_expired(self) -> None:
        f = facts(lots=(lot(expires_on=dt.date(2026, 5, 11)),))
        r = only(f, "lot_expired")
        assert r.message == "Lipo mix lot L100 expired on 11 May 2026."

    def test_expiry_uses_the_clinics_date_for_a_late_evening_session(self) -> None:
        # 22:30 on 10 May in New York is already 11 May in UTC: the lot is still usable.
        evening = dt.datetime(2026, 5, 10, 22, 30, tzinfo=NEW_YORK)
        assert evening.astimezone(UTC).date() == dt.date(2026, 5, 11)
        f = facts(
            performed_at=evening,
            tz=NEW_YORK,
            other_sessions_at=(),
            allergy_tests=(allergy(read(25), given_at=evening - dt.timedelta(days=2)),),
            lots=(lot(expires_on=dt.date(2026, 5, 10)),),
        )
        assert codes(f) == []
        next_morning = evening + dt.timedelta(hours=12)
        assert codes(dataclasses.replace(f, performed_at=next_morning)) == ["lot_expired"]

    def test_expiry_uses_the_clinics_date_for_a_morning_session_east_of_utc(self) -> None:
        # 08:00 on 11 May in Tokyo is still 10 May in UTC: the lot has expired there.
        morning = dt.datetime(2026, 5, 11, 8, 0, tzinfo=TOKYO)
        assert morning.astimezone(UTC).date() == dt.date(2026, 5, 10)
        f = facts(
            performed_at=morning,
            tz=TOKYO,
            other_sessions_at=(),
            allergy_tests=(allergy(read(25), given_at=morning - dt.timedelta(days=2)),),
            lots=(lot(expires_on=dt.date(2026, 5, 10)),),
        )
        assert codes(f) == ["lot_expired"]

    def test_it_refuses_a_recalled_lot_and_never_lets_it_be_overridden(self) -> None:
        f = facts(
            lots=(lot(recalled=True, recall_reason="Mycobacterium chelonae in the vial"),),
            overridable=frozenset({"lot_recalled", "interval_too_short"}),
        )
        r = only(f, "lot_recalled")
        assert "Mycobacterium chelonae in the vial" in r.message
        assert "Lipo mix lot L100" in r.message
        assert r.overridable is False
        assert rules.blocking([r], ["lot_recalled"]) == [r]

    def test_a_recall_reason_ending_in_a_bracket_reads_as_one_sentence(self) -> None:
        reason = "Supplier recall notice (possible mycobacterial contamination)."
        r = only(facts(lots=(lot(recalled=True, recall_reason=reason),)), "lot_recalled")
        assert "contamination). This can never be overridden." in r.message
        assert ").)." not in r.message and ".." not in r.message

    def test_it_accepts_a_lot_that_is_not_recalled(self) -> None:
        assert "lot_recalled" not in codes(facts(lots=(lot(recalled=False),)))

    def test_it_checks_every_lot(self) -> None:
        good = lot()
        bad = lot(lot_id=2, label="Lidocaine 1% lot LD1", expires_on=dt.date(2026, 1, 1))
        r = only(facts(lots=(good, bad)), "lot_expired")
        assert "Lidocaine 1% lot LD1" in r.message

    def test_it_refuses_a_lot_with_an_ingredient_the_patient_is_allergic_to(self) -> None:
        f = facts(patient_allergies={CAFFEINE: "Caffeine"})
        r = only(f, "ingredient_allergy")
        assert r.message == (
            "Lipo mix lot L100 contains Caffeine, which the patient is allergic to."
        )

    def test_it_accepts_a_lot_free_of_the_patients_allergens(self) -> None:
        assert codes(facts(patient_allergies={LIDOCAINE: "Lidocaine"})) == []

    # Practitioner licence.

    def test_it_refuses_a_practitioner_without_a_licence(self) -> None:
        r = only(facts(licence_expires_on=None), "practitioner_licence_expired")
        assert r.message == "Dr Rivera has no licence on file in this clinic."

    def test_it_refuses_a_practitioner_whose_licence_has_expired(self) -> None:
        r = only(facts(licence_expires_on=dt.date(2026, 5, 11)), "practitioner_licence_expired")
        assert r.message == "Dr Rivera's licence expired on 11 May 2026."

    def test_it_accepts_a_licence_valid_on_the_day_of_the_session(self) -> None:
        assert codes(facts(licence_expires_on=dt.date(2026, 5, 12))) == []
        assert codes(facts(licence_expires_on=dt.date(2030, 1, 1))) == []

    def test_the_gate_and_booking_share_one_licence_rule(self) -> None:
        from mesoclinic.scheduling.actions import INJECTING, may_give

        day, today = dt.date(2026, 5, 12), dt.date(2026, 5, 1)
        cases = {
            None: "Dr Rivera has no licence on file in this clinic.",
            dt.date(2026, 4, 30): "Dr Rivera's licence expired on 30 Apr 2026.",
            dt.date(2026, 5, 11): "Dr Rivera's licence expires on 11 May 2026, before the visit.",
            dt.date(2026, 5, 12): None,
        }
        kind = sorted(INJECTING)[0]
        for expires, words in cases.items():
            assert rules.licence_problem("Dr Rivera", expires, day, today) == words
            # Booking offers exactly whom the gate would let inject that day.
            assert may_give(kind, expires, day) is (words is None)
            gate = codes(facts(licence_expires_on=expires))
            assert ("practitioner_licence_expired" in gate) is (
                rules.licence_problem("", expires, dt.date(2026, 5, 12)) is not None
            )

    # Every reason at once.

    def test_it_names_every_reason_at_once(self) -> None:
        f = facts(
            screening_result="ineligible",
            screening_hard_stops=("Are you breastfeeding?",),
            products_without_current_consent=("Lipo mix",),
            # The latest test is unread and an earlier one showed a reaction.
            allergy_tests=(
                allergy(read(25, "local"), given_at=GIVEN_AT - dt.timedelta(days=10)),
                allergy(),
            ),
            other_sessions_at=(SESSION_AT - dt.timedelta(days=2),),
            lots=(
                lot(
                    expires_on=dt.date(2026, 1, 1),
                    recalled=True,
                    recall_reason="Contaminated",
                ),
            ),
            patient_allergies={CAFFEINE: "Caffeine"},
            licence_expires_on=None,
        )
        assert codes(f) == [
            "screening_hard_stop",
            "consent_outdated",
            "allergy_test_unread",
            "allergy_reaction",
            "interval_too_short",
            "lot_expired",
            "lot_recalled",
            "ingredient_allergy",
            "practitioner_licence_expired",
        ]

    def test_a_multi_dose_vial_is_refused_from_its_beyond_use_time_never_overridably(
        self,
    ) -> None:
        opened = SESSION_AT - dt.timedelta(days=28)
        at_the_limit = vial(opened_at=opened, beyond_use_at=SESSION_AT)
        a_minute_before = vial(opened_at=opened, beyond_use_at=SESSION_AT + dt.timedelta(minutes=1))
        assert codes(facts(vials=(a_minute_before,))) == []
        found = rules.refusals(
            facts(vials=(at_the_limit,), overridable=frozenset({"vial_beyond_use"}))
        )
        assert [(r.code, r.overridable) for r in found] == [("vial_beyond_use", False)]
        # In the clinic's time and words: opened 10:00 Paris time, usable 28 days.
        assert found[0].message == (
            "Vial 2 of Lipo mix lot L100 was opened at 10:00 on Tue 14 Apr 2026; an opened "
            "multi-dose vial of this product may be used for 28 days, until 10:00 on Tue 12 May "
            "2026. Throw it away and open a new vial. This can never be overridden."
        )

    def test_a_single_dose_vial_is_refused_for_a_second_patient_only(self) -> None:
        single = vial(single_dose=True, beyond_use_at=None, other_patient=False)
        assert codes(facts(vials=(single,))) == []
        reused = dataclasses.replace(single, other_patient=True)
        found = rules.refusals(facts(vials=(reused,)))
        assert [(r.code, r.overridable) for r in found] == [("single_dose_reused", False)]
        assert "already used for another patient" in found[0].message

    def test_an_allergy_test_meets_the_vial_gates_too(self) -> None:
        found = rules.allergy_test_refusals([lot()], SESSION_AT, PARIS, {}, None, [vial()])
        assert [r.code for r in found] == ["vial_beyond_use"]
        assert not found[0].overridable

    def test_every_refusal_code_can_be_reached_with_every_other_gate_failing_too(self) -> None:
        # Some codes exclude each other by their meaning (no screening vs a hard stop on the
        # screening; no consent vs an outdated one; no test vs unread vs read too early), so
        # three worst cases between them, and a fourth for the baseline, reach every code.
        worst = dict(
            other_sessions_at=(SESSION_AT - dt.timedelta(days=2),),
            lots=(lot(expires_on=dt.date(2026, 1, 1), recalled=True, recall_reason="Mould"),),
            patient_allergies={CAFFEINE: "Caffeine"},
            licence_expires_on=dt.date(2026, 1, 1),
            problems=(
                rules.ProblemFacts(True, "An infection"),
                rules.ProblemFacts(False, "A serious adverse event"),
                rules.ProblemFacts(False, "An ulcer", side_effect=True),
            ),
            planned_products={2: "Hair cocktail"},
            vials=(vial(), vial(single_dose=True, beyond_use_at=None, other_patient=True)),
        )
        first = facts(screening_result=None, has_consent=False, allergy_tests=(), **worst)
        second = facts(
            screening_result="ineligible",
            screening_hard_stops=("Are you pregnant, or could you be?",),
            products_without_current_consent=("Lipo mix",),
            allergy_tests=(allergy(read(1, "systemic")),),
            **worst,
        )
        third = facts(allergy_tests=(allergy(),), **worst)
        # The baseline gate only judges session 1, which `worst` is not (it has a session
        # before it), so a fourth case reaches it.
        fourth = facts(baseline_required=True, has_baseline=False, other_sessions_at=())
        assert codes(fourth) == ["no_baseline"]
        reached = set(codes(first)) | set(codes(second)) | set(codes(third)) | set(codes(fourth))
        assert reached == set(RefusalCode.values)
        assert len(codes(first)) == 14
        assert len(codes(second)) == 15
        assert "allergy_read_too_early" in codes(second)

    def test_every_message_is_a_sentence_in_words(self) -> None:
        f = facts(
            screening_result=None,
            has_consent=False,
            allergy_tests=(allergy(),),
            other_sessions_at=(SESSION_AT - dt.timedelta(days=2),),
            lots=(lot(expires_on=dt.date(2026, 1, 1), recalled=True, recall_reason="Mould"),),
            patient_allergies={CAFFEINE: "Caffeine"},
            licence_expires_on=None,
        )
        found = rules.refusals(f)
        assert len(found) == 8
        for r in found:
            assert r.message[0].isupper() and r.message.endswith("."), r.message
            assert r.code not in r.message
            assert r.as_dict() == {
                "code": r.code,
                "message": r.message,
                "overridable": r.overridable,
            }

    def test_times_in_messages_are_in_the_clinics_time_zone(self) -> None:
        f = facts(allergy_tests=(allergy(),), tz=NEW_YORK)
        # 08:00 UTC on 9 May is 04:00 in New York (UTC-4 in summer).
        r = only(f, "allergy_test_unread")
        assert "04:00 on Sat 9 May 2026" in r.message
        assert "08:00" not in r.message

    # blocking() and invalid_overrides().

    def test_an_override_lifts_only_the_overridable_refusals_it_names(self) -> None:
        f = facts(
            other_sessions_at=(SESSION_AT - dt.timedelta(days=2),),
            lots=(lot(recalled=True, recall_reason="Mould"),),
        )
        found = rules.refusals(f)
        assert [r.code for r in found] == ["interval_too_short", "lot_recalled"]
        assert [r.code for r in rules.blocking(found, [])] == [
            "interval_too_short",
            "lot_recalled",
        ]
        assert [r.code for r in rules.blocking(found, ["interval_too_short"])] == ["lot_recalled"]
        assert [r.code for r in rules.blocking(found, ["interval_too_short", "lot_recalled"])] == [
            "lot_recalled"
        ]

    def test_an_override_lifts_everything_when_every_refusal_is_overridable(self) -> None:
        found = rules.refusals(facts(other_sessions_at=(SESSION_AT - dt.timedelta(days=2),)))
        assert rules.blocking(found, ["interval_too_short"]) == []

    def test_invalid_overrides_names_absent_and_unoverridable_codes(self) -> None:
        f = facts(
            other_sessions_at=(SESSION_AT - dt.timedelta(days=2),),
            lots=(lot(recalled=True, recall_reason="Mould"),),
        )
        found = rules.refusals(f)
        assert rules.invalid_overrides(found, ["interval_too_short"]) == []
        assert rules.invalid_overrides(found, []) == []
        assert rules.invalid_overrides(
            found, ["lot_recalled", "no_consent", "interval_too_short"]
        ) == ["lot_recalled", "no_consent"]

    def test_an_override_of_a_gate_that_did_not_refuse_is_invalid(self) -> None:
        assert rules.invalid_overrides(rules.refusals(facts()), ["interval_too_short"]) == [
            "interval_too_short"
        ]
