"""API tokens and calendar addresses die with their reason: a password change, deactivation,
an ended membership, or their holder's logout. A user lists and revokes their own tokens."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth.tokens import default_token_generator
from django.test import Client
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from mesoclinic.accounts.models import AuditEvent, Clinic, Membership
from mesoclinic.api.models import ApiToken
from mesoclinic.patients.models import Patient
from mesoclinic.scheduling import feeds
from mesoclinic.scheduling.models import CalendarFeed
from tests.conftest import Api, World, api_for, problem_of
from tests.test_web import signed_in

NEW_PASSWORD = "a-Long-new-passphrase-42"


def ics(raw: str) -> int:
    return Client().get(f"/feeds/{raw}.ics", HTTP_HOST="localhost").status_code


class TokenRevocationTests:
    def test_a_password_change_on_the_web_ends_the_users_tokens(self, world: World) -> None:
        api = api_for(world.practitioner)
        assert api.get("/patients").status_code == 200
        client = signed_in(world.practitioner)
        r = client.post(
            "/accounts/password_change/",
            {"old_password": "pw", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        )
        assert r.status_code == 302
        problem_of(api.get("/patients"), 401)
        token = ApiToken.objects.get(user=world.practitioner)
        assert token.revoked_at is not None and token.revoked_reason == "password changed"
        row = AuditEvent.objects.get(action=AuditEvent.Action.REVOKE)
        assert (row.clinic, row.object_id) == (world.clinic, str(token.pk))
        assert row.detail["reason"] == "password changed"

    def test_a_password_reset_ends_the_users_tokens(self, world: World) -> None:
        api = api_for(world.practitioner)
        user = world.practitioner
        uid = urlsafe_base64_encode(force_bytes(user.pk))
        link = f"/accounts/reset/{uid}/{default_token_generator.make_token(user)}/"
        client = Client()
        form = client.get(link, follow=True)
        r = client.post(
            form.redirect_chain[-1][0],
            {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        )
        assert r.status_code == 302
        assert api.get("/patients").status_code == 401

    def test_set_password_from_any_path_ends_the_tokens(self, world: World) -> None:
        api = api_for(world.front_desk)
        world.front_desk.set_password(NEW_PASSWORD)
        world.front_desk.save()
        assert api.get("/patients").status_code == 401

    def test_a_save_without_a_new_password_keeps_the_tokens(self, world: World) -> None:
        api = api_for(world.front_desk)
        world.front_desk.first_name = "Renamed"
        world.front_desk.save()
        assert api.get("/patients").status_code == 200

    def test_deactivation_ends_the_users_tokens(self, world: World) -> None:
        api = api_for(world.practitioner)
        world.practitioner.is_active = False
        world.practitioner.save()
        world.practitioner.is_active = True
        world.practitioner.save()
        # Reactivating the account does not bring the old token back.
        assert api.get("/patients").status_code == 401
        assert ApiToken.objects.get().revoked_reason == "deactivated"

    def test_an_ended_membership_ends_its_tokens_and_keeps_the_record(self, world: World) -> None:
        api = api_for(world.practitioner)
        Membership.objects.filter(user=world.practitioner).delete()
        assert api.get("/patients").status_code == 401
        token = ApiToken.objects.get(user=world.practitioner)
        assert token.revoked_reason == "membership ended" and token.membership is None
        assert AuditEvent.objects.filter(action="revoke", clinic=world.clinic).count() == 1


class LogoutAndTokenListTests:
    def test_logout_revokes_the_presented_token_only(self, world: World) -> None:
        first, second = api_for(world.manager), api_for(world.manager)
        r = first.post("/auth/logout")
        assert r.status_code == 204
        assert first.get("/patients").status_code == 401
        assert second.get("/patients").status_code == 200
        assert ApiToken.objects.filter(revoked_reason="logged out").count() == 1

    def test_the_list_shows_the_callers_live_tokens_without_secrets(
        self, world: World, other: World
    ) -> None:
        mine = api_for(world.manager)
        api_for(world.manager).post("/auth/logout")
        api_for(world.practitioner)
        api_for(other.manager)
        r = mine.get("/auth/tokens")
        assert r.status_code == 200
        rows = r.json()
        token = ApiToken.objects.get(user=world.manager, revoked_at__isnull=True)
        assert len(rows) == 1
        assert rows[0]["id"] == token.pk and rows[0]["current"] is True
        assert rows[0]["clinic"] == world.clinic.pk
        assert rows[0]["clinic_name"] == world.clinic.name
        assert set(rows[0]) == {
            "id",
            "created_at",
            "expires_at",
            "last_used_at",
            "clinic",
            "clinic_name",
            "current",
        }
        assert mine.token not in r.content.decode() and token.key_hash not in r.content.decode()

    def test_a_user_revokes_one_of_their_own_tokens_but_not_anothers(self, world: World) -> None:
        mine, spare = api_for(world.manager), api_for(world.manager)
        theirs = api_for(world.practitioner)
        spare_id = ApiToken.objects.filter(user=world.manager).order_by("pk").last().pk  # type: ignore[union-attr]
        their_id = ApiToken.objects.get(user=world.practitioner).pk
        problem_of(
            mine.client.delete(f"/api/v1/auth/tokens/{their_id}", headers=mine._headers()), 404
        )
        assert theirs.get("/patients").status_code == 200
        r = mine.client.delete(f"/api/v1/auth/tokens/{spare_id}", headers=mine._headers())
        assert r.status_code == 204
        assert spare.get("/patients").status_code == 401
        assert mine.get("/patients").status_code == 200

    def test_logout_needs_a_token(self, db: Any) -> None:
        problem_of(Api(None).post("/auth/logout"), 401)


class FeedLifetimeTests:
    def test_a_departed_practitioners_feed_answers_404(self, world: World) -> None:
        _, raw = feeds.do_create_feed(user=world.practitioner, for_user=world.practitioner)
        assert ics(raw) == 200
        Membership.objects.filter(user=world.practitioner).delete()
        assert ics(raw) == 404
        feed = CalendarFeed.objects.get()
        assert feed.revoked_at is not None
        row = AuditEvent.objects.get(action="revoke", object_type="scheduling.CalendarFeed")
        assert row.detail["reason"] == "membership ended"

    def test_a_deactivated_practitioners_feed_answers_404(self, world: World) -> None:
        _, raw = feeds.do_create_feed(user=world.practitioner, for_user=world.practitioner)
        world.practitioner.is_active = False
        world.practitioner.save()
        assert ics(raw) == 404

    def test_a_feed_answers_404_even_when_the_revocation_was_missed(self, world: World) -> None:
        """A membership removed behind the ORM's back (a raw delete) still ends the feed."""
        _, raw = feeds.do_create_feed(user=world.practitioner, for_user=world.practitioner)
        Membership.objects.filter(user=world.practitioner)._raw_delete("default")  # type: ignore[attr-defined]
        assert ics(raw) == 404

    def test_only_the_hash_of_a_feed_token_is_stored(self, world: World, patient: Patient) -> None:
        import hashlib

        feed, raw = feeds.do_create_feed(user=world.front_desk, patient=patient)
        assert feed.token_hash == hashlib.sha256(raw.encode()).hexdigest()
        assert not CalendarFeed.objects.filter(token_hash=raw).exists()

    def test_the_address_is_shown_once(self, world: World) -> None:
        client = signed_in(world.practitioner)
        first = client.post("/my-calendar/", follow=True).content.decode()
        assert "/feeds/" in first and "shown only this once" in first
        again = client.get("/my-calendar/").content.decode()
        assert "/feeds/" not in again
        assert "make a new address" in again


class FeedHashMigrationTests:
    def test_the_migration_hashes_existing_tokens_so_old_addresses_keep_working(
        self, transactional_db: Any
    ) -> None:
        import hashlib

        from django.db import connection
        from django.db.migrations.executor import MigrationExecutor

        executor = MigrationExecutor(connection)
        before = [("scheduling", "0002_calendar_feed")]
        executor.migrate(before)
        old_apps = executor.loader.project_state(before).apps
        OldFeed = old_apps.get_model("scheduling", "CalendarFeed")
        # Clinics and patients are untouched by the migration: today's models make them.
        clinic = Clinic.objects.create(name="Old", timezone="UTC")
        patient = Patient.objects.create(
            clinic=clinic, first_name="A", last_name="B", date_of_birth=dt.date(1990, 1, 1)
        )
        OldFeed.objects.create(clinic_id=clinic.pk, patient_id=patient.pk, token="old-raw-token")

        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
        feed = CalendarFeed.objects.get()
        assert feed.token_hash == hashlib.sha256(b"old-raw-token").hexdigest()
        assert feeds.find("old-raw-token") is not None


class SessionsAndTokensPageTests:
    def test_it_lists_the_users_own_tokens_and_feed_and_ends_them(
        self, world: World, other: World
    ) -> None:
        api = api_for(world.practitioner)
        theirs = api_for(world.manager)
        _, raw = feeds.do_create_feed(user=world.practitioner, for_user=world.practitioner)
        client = signed_in(world.practitioner)
        page = client.get("/account/tokens/")
        assert page.status_code == 200 and page["Cache-Control"] == "no-store"
        text = page.content.decode()
        mine = ApiToken.objects.get(user=world.practitioner)
        manager_token = ApiToken.objects.get(user=world.manager)
        assert f"/account/tokens/{mine.pk}/revoke/" in text
        assert f"/account/tokens/{manager_token.pk}/revoke/" not in text
        assert api.token not in text and raw not in text
        assert "signs out after 30 minutes" in text

        assert client.post(f"/account/tokens/{manager_token.pk}/revoke/").status_code == 404
        assert theirs.get("/patients").status_code == 200
        assert client.post(f"/account/tokens/{mine.pk}/revoke/").status_code == 302
        assert api.get("/patients").status_code == 401

        feed = CalendarFeed.objects.get()
        assert client.post(f"/account/feeds/{feed.pk}/revoke/").status_code == 302
        assert ics(raw) == 404
