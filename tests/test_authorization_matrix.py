"""The authorization matrix: every route the product serves, tried by every kind of caller.

The routes are read from the URL conf and from the API's OpenAPI schema, so a new route is
tried without anyone adding it here; the tables below say what level each route needs, and
the test fails for a route that has no entry, so every new route gets classified. What each
kind of caller should get follows from the level:

- anonymous: the login page (302) on the web, 401 from the API;
- deactivated: the same as anonymous (their session and tokens no longer sign them in);
- a patient's own login: 403 from the staff's pages and endpoints; their own records from the
  few that a patient may read (`OWN`); another patient's records are a 404;
- front desk, practitioner, manager: served at their level, 403 below it;
- a manager of another clinic: 404 for this clinic's objects, served on lists and forms;
- the holder of a signed link (a reminder's, the infection watch's, a calendar feed's): the
  link's page whoever they are; links for the wrong object are in tests/test_access.py.

The admin is covered by a pattern rule: every /admin/ page needs a staff user with a managed
clinic (tests/test_admin.py checks its scoping)."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

from mesoclinic.access import CLINICAL, MANAGE, MONEY, OWN, PATIENT, READ
from tests.routes import (
    CALLERS,
    Objects,
    api_operations,
    objects_fixture,  # noqa: F401 - the `objects` fixture
    web_routes,
)
from tests.test_api_endpoints import ENDPOINTS

# Levels that are not a set of roles.
PUBLIC = frozenset({"public"})  # Django's sign-in pages: open to all
REDIRECT = frozenset({"redirect"})  # "/" sends everyone to Today
SIGNED_IN = frozenset({"signed in"})  # any signed-in user: their own clinics, tokens, sign-out
OWNER = frozenset({"owner"})  # one of the practitioner's own tokens or calendar addresses
LINK = frozenset({"link"})  # a signed link: its page, whoever holds it
# The SMS provider's webhooks: only a request signed with the provider's auth token is taken,
# whoever sends it, so every caller here (none signs) is refused with 403.
PROVIDER = frozenset({"provider"})
OWN_RECORD = CLINICAL | {PATIENT}  # staff record; a patient only their own satisfaction
PORTAL = frozenset({PATIENT})  # the patient portal's pages: a patient's own login only
# The FHIR API (mesoclinic/fhir): staff of the clinic and the patient for their own records,
# tried on the patient's Patient resource; a refusal is 401 (an OperationOutcome), never the
# login page, and a search by someone who may see none of it is an empty Bundle.
FHIR = frozenset({"fhir"})
# The FHIR bulk `$export` (mesoclinic/fhir/bulk.py): a clinic's managers only, refusals as
# OperationOutcomes (401 for no caller); another clinic's export or lot is a 404.
FHIR_EXPORT = frozenset({"fhir export"})
# A clinical photo's image over FHIR (`Binary/photo-<id>`): clinical staff and the patient, as
# the photo's DocumentReference; refusals as OperationOutcomes, 401 for no caller.
FHIR_PHOTO = frozenset({"fhir photo"})

# Every page of the web app: (method to try, level).
WEB: dict[str, tuple[str, frozenset[str]]] = {
    "": ("GET", REDIRECT),
    "login": ("GET", PUBLIC),
    "logout": ("POST", PUBLIC),
    "password_change": ("GET", PUBLIC),
    "password_change_done": ("GET", PUBLIC),
    "password_reset": ("GET", PUBLIC),
    "password_reset_done": ("GET", PUBLIC),
    "password_reset_confirm": ("GET", PUBLIC),
    "password_reset_complete": ("GET", PUBLIC),
    "confirm": ("GET", LINK),
    "change": ("GET", LINK),
    "watch": ("GET", LINK),
    "notice": ("GET", LINK),
    "sms_inbound": ("POST", PROVIDER),
    "sms_status": ("POST", PROVIDER),
    "calendar_feed": ("GET", LINK),
    "today": ("GET", READ),
    "today_list": ("GET", READ),
    "handle_change_request": ("POST", READ),
    "switch_clinic": ("POST", SIGNED_IN),
    "patients": ("GET", READ),
    "register_patient": ("GET", READ),
    "chart": ("GET", READ),
    "patient_copy": ("GET", CLINICAL),
    "messages": ("GET", READ),
    "patient_messages": ("GET", READ),
    "screen": ("GET", CLINICAL),
    "plan_course": ("GET", CLINICAL),
    "consent": ("GET", CLINICAL),
    "give_test": ("POST", CLINICAL),
    "read_test": ("POST", CLINICAL),
    "book_course": ("GET", READ),
    "book_maintenance": ("POST", READ),
    "chart_session": ("GET", CLINICAL),
    "session": ("GET", READ),
    "email_aftercare": ("POST", CLINICAL),
    "course_plan_pdf": ("GET", READ),
    "consent_pdf": ("GET", READ),
    "aftercare_pdf": ("GET", READ),
    "report_side_effect": ("GET", CLINICAL),
    "report_course_side_effect": ("GET", CLINICAL),
    "resolve_side_effect": ("POST", CLINICAL),
    "close_follow_up": ("POST", CLINICAL),
    "course_status": ("GET", CLINICAL),
    "amend_session": ("GET", CLINICAL),
    "amend_measurement": ("GET", CLINICAL),
    "amend_allergy_reading": ("GET", CLINICAL),
    "my_feed": ("GET", CLINICAL),
    "patient_feed": ("POST", READ),
    "manage_formulary": ("GET", MANAGE),
    "manage_stock": ("GET", MANAGE),
    "manage_add_product": ("GET", MANAGE),
    "manage_add_lot": ("GET", MANAGE),
    "manage_lot": ("GET", MANAGE),
    "manage_lot_csv": ("GET", MANAGE),
    "manage_lot_exposed": ("GET", MANAGE),
    "manage_lot_stock": ("POST", MANAGE),
    "manage_lot_open_vial": ("POST", MANAGE),
    "manage_vial_close": ("POST", MANAGE),
    "account": ("GET", MONEY),
    "sell_package": ("POST", MONEY),
    "invoice": ("GET", MONEY),
    "invoice_pdf": ("GET", MONEY),
    "email_invoice": ("POST", MONEY),
    "take_payment": ("POST", MONEY),
    "credit_note": ("POST", MANAGE),
    "refund": ("POST", MANAGE),
    "price_list": ("GET", MANAGE),
    "edit_price": ("GET", MANAGE),
    "daily_close": ("GET", MANAGE),
    "outstanding": ("GET", MANAGE),
    "revenue": ("GET", MANAGE),
    "new_quote": ("POST", MONEY),
    "quote": ("GET", MONEY),
    "quote_pdf": ("GET", MONEY),
    "withdraw_quote": ("POST", MONEY),
    "pay_online": ("POST", MONEY),
    "checkout_return": ("GET", MONEY),
    "stripe_webhook": ("POST", PROVIDER),
    "charge_fee": ("POST", MONEY),
    "settle_package": ("POST", MANAGE),
    "payment_policy": ("GET", MANAGE),
    "manage_lot_notify": ("POST", MANAGE),
    "manage_clinic": ("GET", MANAGE),
    "manage_staff": ("GET", MANAGE),
    "manage_invite": ("GET", MANAGE),
    "manage_change_role": ("POST", MANAGE),
    "manage_add_licence": ("GET", MANAGE),
    "manage_member": ("GET", MANAGE),
    "manage_member_photo": ("POST", MANAGE),
    "manage_deactivate": ("POST", MANAGE),
    "manage_reactivate": ("POST", MANAGE),
    "manage_renew_licence": ("GET", MANAGE),
    "manage_edit_licence": ("GET", MANAGE),
    "manage_protocols": ("GET", MANAGE),
    "manage_protocol": ("GET", MANAGE),
    "manage_protocol_edit": ("GET", MANAGE),
    "calendar": ("GET", READ),
    "calendar_book": ("GET", READ),
    "calendar_appointment": ("GET", READ),
    "calendar_move": ("GET", READ),
    "calendar_cancel": ("POST", READ),
    "calendar_no_show": ("POST", READ),
    "calendar_arrived": ("POST", READ),
    "record_measurements": ("GET", CLINICAL),
    "course_progress": ("GET", READ),
    "progress_pdf": ("GET", READ),
    "photo_consent": ("GET", CLINICAL),
    "course_photos": ("GET", CLINICAL),
    "compare_photos": ("GET", CLINICAL),
    "photo_image": ("GET", CLINICAL),
    "marketing_photos": ("GET", MANAGE),
    "adverse_events": ("GET", CLINICAL),
    "report_course_adverse_event": ("GET", CLINICAL),
    "watch_schedule": ("GET", READ),
    "report_adverse_event": ("GET", CLINICAL),
    "update_adverse_event": ("POST", CLINICAL),
    "safety_alerts": ("GET", MANAGE),
    "safety_surveil": ("POST", MANAGE),
    "safety_alert": ("GET", MANAGE),
    "safety_alert_acknowledge": ("POST", MANAGE),
    "safety_alert_close": ("POST", MANAGE),
    "safety_alert_recall": ("POST", MANAGE),
    "analytics": ("GET", MANAGE),
    "account_tokens": ("GET", SIGNED_IN),
    "account_revoke_token": ("POST", OWNER),
    # The tablet handover (web/kiosk.py): staff set a PIN and hand the tablet to a patient;
    # the way back answers anyone signed in (outside a handover it sends them to Today).
    "account_pin": ("POST", READ),
    "kiosk_start": ("POST", READ),
    "kiosk_return": ("GET", SIGNED_IN),
    "kiosk_sign_out": ("POST", SIGNED_IN),
    "account_revoke_feed": ("POST", OWNER),
    # The setup pages (web/setup.py).
    "manage_setup": ("GET", MANAGE),
    "manage_opening_hours": ("GET", MANAGE),
    "manage_delete_holiday": ("POST", MANAGE),
    "manage_rooms": ("GET", MANAGE),
    "manage_room": ("POST", MANAGE),
    "manage_visit_types": ("GET", MANAGE),
    "manage_member_hours": ("GET", MANAGE),
    "manage_delete_exception": ("POST", MANAGE),
    "manage_consent": ("GET", MANAGE),
    "manage_audit": ("GET", MANAGE),
    "manage_audit_csv": ("GET", MANAGE),
    "import_start": ("GET", MANAGE),
    "import_fhir": ("GET", MANAGE),
    "import_job": ("GET", MANAGE),
    "import_run": ("POST", MANAGE),
    "import_report_csv": ("GET", MANAGE),
    # The patient's record (web/patients.py).
    "edit_patient": ("GET", READ),
    "patient_history": ("GET", READ),
    "patient_medications": ("GET", CLINICAL),
    "stop_medication": ("POST", CLINICAL),
    "patient_allergies": ("GET", CLINICAL),
    "allergy_in_error": ("POST", CLINICAL),
    "ingredient_picker": ("GET", READ),
    "merge_patient": ("GET", MANAGE),
    # The patient portal (mesoclinic/portal): its names are qualified, since they repeat the
    # staff's (login, course_plan_pdf).
    "portal:login": ("GET", PUBLIC),
    "portal:sign_in_link": ("GET", PUBLIC),
    "portal:logout": ("POST", PUBLIC),
    "portal:register": ("GET", PUBLIC),
    "portal:register_at": ("GET", PUBLIC),
    "portal:use_link": ("GET", PUBLIC),
    "portal:home": ("GET", PORTAL),
    "portal:password": ("GET", PORTAL),
    "portal:intake": ("GET", PORTAL),
    "portal:intake_details": ("GET", PORTAL),
    "portal:intake_screening": ("GET", PORTAL),
    "portal:intake_photos": ("GET", PORTAL),
    "portal:intake_consent": ("GET", PORTAL),
    "portal:course_plan_pdf": ("GET", PORTAL),
    "portal:consent_pdf": ("GET", PORTAL),
    "portal:aftercare_pdf": ("GET", PORTAL),
    "portal:photo": ("GET", PORTAL),
    "portal:copy": ("GET", PORTAL),
    "portal:visits": ("GET", PORTAL),
    "portal:visit_book": ("GET", PORTAL),
    "portal:visit_move": ("GET", PORTAL),
    "portal:visit_cancel": ("GET", PORTAL),
    "portal:waitlist": ("POST", PORTAL),
    "portal:offer": ("GET", LINK),
    "portal:diary": ("GET", PORTAL),
    "portal:diary_report": ("GET", PORTAL),
    "portal:side_effect": ("GET", PORTAL),
    "portal:notices": ("GET", PORTAL),
    "portal:payments": ("GET", PORTAL),
    "portal:paid": ("GET", PORTAL),
    "portal:quote": ("GET", PORTAL),
    "portal:quote_pdf": ("GET", PORTAL),
    "portal:pay": ("POST", PORTAL),
    "portal:notice": ("GET", PORTAL),
    "portal:watch": ("GET", PORTAL),
    "portal:messages": ("GET", PORTAL),
    "portal:watch_answer": ("GET", PORTAL),
    "portal:invite": ("POST", READ),
    # Each clinic's public site (mesoclinic/site/): no login.
    "home": ("GET", PUBLIC),
    "protocol": ("GET", PUBLIC),
    "products": ("GET", PUBLIC),
    "practitioners": ("GET", PUBLIC),
    "gallery": ("GET", PUBLIC),
    "gallery_image": ("GET", PUBLIC),
    "questions": ("GET", PUBLIC),
    "book": ("GET", PUBLIC),
    "booked": ("GET", PUBLIC),
    "sitemap": ("GET", PUBLIC),
    "brand_css": ("GET", PUBLIC),
    # Visitors' questions, answered by clinical staff (web/questions.py).
    "site_questions": ("GET", CLINICAL),
    "site_answer": ("POST", CLINICAL),
    # The FHIR R4B API (mesoclinic/fhir/): the CapabilityStatement is open to all.
    "fhir_metadata": ("GET", PUBLIC),
    "fhir_search": ("GET", FHIR),
    "fhir_read": ("GET", FHIR),
    "fhir_binary": ("GET", FHIR_PHOTO),
    "fhir_export": ("GET", FHIR_EXPORT),
    "fhir_export_patients": ("GET", FHIR_EXPORT),
    "fhir_export_group": ("GET", FHIR_EXPORT),
    "fhir_export_status": ("GET", FHIR_EXPORT),
    "fhir_export_file": ("GET", FHIR_EXPORT),
    # SMART App Launch (mesoclinic/fhir/smart.py): discovery and the OAuth2 server are open,
    # as apps reach them before anyone signs in (a request without a code or token is 400);
    # the authorize page asks whoever is not signed in to sign in.
    "smart_configuration": ("GET", PUBLIC),
    "smart_authorize": ("GET", PUBLIC),
    "smart_token": ("POST", PUBLIC),
    "smart_revoke": ("POST", PUBLIC),
    "smart_apps_mine": ("GET", SIGNED_IN),
    "manage_apps": ("GET", MANAGE),
}
WEB_QUERY = {"compare_photos": "?area=thighs&view=front"}

# Every API operation: its level. Bodies come from tests/test_api_endpoints.py's table.
API: dict[tuple[str, str], frozenset[str]] = {
    ("POST", "/auth/token"): PUBLIC,
    ("POST", "/auth/logout"): SIGNED_IN,
    ("GET", "/auth/tokens"): SIGNED_IN,
    ("DELETE", "/auth/tokens/{token_id}"): OWNER,
    ("GET", "/audit"): MANAGE,
    ("GET", "/staff"): MANAGE,
    ("GET", "/staff/{membership_id}/licences"): MANAGE,
    ("GET", "/protocols"): READ,
    ("GET", "/protocols/{key}"): READ,
    ("PUT", "/protocols/{key}"): MANAGE,
    ("POST", "/patients"): READ,
    ("GET", "/patients"): READ,
    ("GET", "/patients/{patient_id}"): READ,
    ("POST", "/patients/{patient_id}/allergies"): CLINICAL,
    ("GET", "/screening-form"): READ,
    ("POST", "/patients/{patient_id}/screenings"): CLINICAL,
    ("GET", "/patients/{patient_id}/consent-text"): CLINICAL,
    ("POST", "/patients/{patient_id}/consents"): CLINICAL,
    ("POST", "/patients/{patient_id}/courses"): CLINICAL,
    ("GET", "/courses/{course_id}"): READ,
    ("POST", "/courses/{course_id}/stop"): CLINICAL,
    ("POST", "/courses/{course_id}/allergy-tests"): CLINICAL,
    ("POST", "/allergy-tests/{test_id}/reading"): CLINICAL,
    ("GET", "/courses/{course_id}/session-check"): CLINICAL,
    ("POST", "/courses/{course_id}/sessions"): CLINICAL,
    ("GET", "/sessions/{session_id}"): READ,
    ("POST", "/sessions/{session_id}/side-effects"): CLINICAL,
    ("POST", "/side-effects/{effect_id}/resolve"): CLINICAL,
    ("GET", "/follow-ups"): CLINICAL,
    ("POST", "/follow-ups/{follow_up_id}/close"): CLINICAL,
    ("GET", "/ingredients"): READ,
    ("GET", "/products"): READ,
    ("POST", "/products"): MANAGE,
    ("POST", "/products/{product_id}/lots"): MANAGE,
    ("GET", "/lots"): READ,
    ("POST", "/lots/{lot_id}/recall"): MANAGE,
    ("GET", "/lots/{lot_id}/patients"): CLINICAL,
    ("GET", "/lots/{lot_id}/stock"): READ,
    ("POST", "/lots/{lot_id}/stock"): MANAGE,
    ("POST", "/lots/{lot_id}/vials"): CLINICAL,
    ("POST", "/vials/{vial_id}/close"): CLINICAL,
    ("GET", "/stock"): MANAGE,
    ("GET", "/prices"): MONEY,
    ("POST", "/prices"): MANAGE,
    ("GET", "/patients/{patient_id}/account"): MONEY,
    ("POST", "/patients/{patient_id}/invoices"): MONEY,
    ("POST", "/courses/{course_id}/packages"): MONEY,
    ("GET", "/invoices/{invoice_id}"): MONEY,
    ("POST", "/invoices/{invoice_id}/payments"): MONEY,
    ("POST", "/invoices/{invoice_id}/credit-notes"): MANAGE,
    ("POST", "/payments/{payment_id}/refunds"): MANAGE,
    ("GET", "/reports/daily-close"): MANAGE,
    ("GET", "/reports/revenue"): MANAGE,
    ("POST", "/courses/{course_id}/quotes"): MONEY,
    ("GET", "/quotes/{quote_id}"): MONEY,
    ("POST", "/quotes/{quote_id}/accept"): MONEY,
    ("POST", "/invoices/{invoice_id}/checkout"): MONEY,
    ("POST", "/appointments/{appointment_id}/fee"): MONEY,
    ("POST", "/packages/{package_id}/settle"): MANAGE,
    ("GET", "/payment-policy"): MONEY,
    ("PUT", "/payment-policy"): MANAGE,
    ("GET", "/analytics"): MANAGE,
    ("GET", "/courses/{course_id}/measurements"): OWN,
    ("POST", "/courses/{course_id}/measurements"): OWN_RECORD,
    ("POST", "/courses/{course_id}/visits"): OWN_RECORD,
    ("GET", "/courses/{course_id}/progress"): OWN,
    ("POST", "/courses/{course_id}/photos"): CLINICAL,
    ("GET", "/courses/{course_id}/photos"): CLINICAL,
    ("GET", "/photos/marketing"): MANAGE,
    ("GET", "/photos/{photo_id}/image"): CLINICAL,
    ("GET", "/patients/{patient_id}/photo-consents"): CLINICAL,
    ("POST", "/patients/{patient_id}/photo-consents"): CLINICAL,
    ("POST", "/adverse-events"): CLINICAL,
    ("GET", "/adverse-events"): CLINICAL,
    ("GET", "/adverse-events/{event_id}"): CLINICAL,
    ("PATCH", "/adverse-events/{event_id}"): CLINICAL,
    ("GET", "/courses/{course_id}/watch"): CLINICAL,
    ("GET", "/appointments"): READ,
    ("POST", "/appointments"): READ,
    ("GET", "/appointments/{appointment_id}"): READ,
    ("POST", "/appointments/{appointment_id}/cancel"): READ,
    ("POST", "/appointments/{appointment_id}/no-show"): READ,
    ("POST", "/appointments/{appointment_id}/arrived"): READ,
    ("POST", "/appointments/{appointment_id}/move"): READ,
    ("POST", "/courses/{course_id}/booking"): READ,
    ("GET", "/courses/{course_id}/maintenance"): READ,
    ("POST", "/courses/{course_id}/maintenance"): READ,
    ("GET", "/calendar/next-free"): READ,
    ("GET", "/calendar/cadence-flags"): READ,
    ("GET", "/safety/alerts"): MANAGE,
    ("GET", "/safety/alerts/{alert_id}"): MANAGE,
    ("POST", "/safety/alerts/{alert_id}/acknowledge"): MANAGE,
    ("POST", "/safety/alerts/{alert_id}/close"): MANAGE,
    ("POST", "/safety/alerts/{alert_id}/recall"): MANAGE,
    ("POST", "/safety/surveil"): MANAGE,
}

# The role each staff caller acts in.
ROLES = {"front_desk": "front_desk", "practitioner": "practitioner", "manager": "manager"}
SERVED = "served"  # reached the view: any answer but 401, 403, 404, 405 or a server error


LOGOUT = ("POST", "/auth/logout")
ENDS_A_LINK = {"account_revoke_feed"}

# Creations whose body names one of the clinic's objects (a session, a patient).
BODY_SCOPED = {"/adverse-events", "/appointments"}


def _scoped(route: str, method: str = "GET") -> bool:
    """Whether the route names one of the clinic's objects by id (another clinic's caller
    must not learn that it exists)."""
    if method == "POST" and route in BODY_SCOPED:
        return True
    return "<int:" in route or ("{" in route and "{key}" not in route)


def expected(
    level: frozenset[str], who: str, route: str, *, api: bool, method: str = "GET"
) -> int | str:
    if level in (PUBLIC, LINK):
        return SERVED
    if level == PROVIDER:
        return 403
    if level == FHIR:
        if who in ("anonymous", "deactivated"):
            return 401
        if who in ("patient_other", "other_clinic") and "<str:resource_id>" in route:
            return 404
        return SERVED
    if level == FHIR_PHOTO:
        if who in ("anonymous", "deactivated"):
            return 401
        if who in ("patient_other", "other_clinic"):
            return 404
        return 403 if who == "front_desk" else SERVED
    if level == FHIR_EXPORT:
        if who in ("anonymous", "deactivated"):
            return 401
        if who == "other_clinic":
            return 404 if "export_id" in route or "group_id" in route else SERVED
        return SERVED if who == "manager" else 403
    if level == REDIRECT:
        return 302
    if who in ("anonymous", "deactivated"):
        return 401 if api else 302
    if level == SIGNED_IN:
        return SERVED
    if level == OWNER:
        # Someone else's token or address is one they may not know exists.
        return SERVED if who == "practitioner" else 404
    if level == PORTAL:
        # A patient's own pages: another patient's object is one they may not know exists;
        # staff are refused, whatever their clinic.
        if who in ("patient_own", "patient_other"):
            return 404 if who == "patient_other" and _scoped(route, method) else SERVED
        return 403
    if level == OWN_RECORD and who == "patient_own":
        # The table's body is a staff measurement; a patient may record only their own
        # satisfaction (tests/test_api_outcomes.py).
        return 403
    if who in ("patient_own", "patient_other"):
        if PATIENT not in level or not api:
            return 403
        return SERVED if who == "patient_own" else 404
    if who == "other_clinic":
        return 404 if _scoped(route, method) else SERVED
    return SERVED if ROLES[who] in level else 403


def _matches(status: int, want: int | str) -> bool:
    if want == SERVED:
        return status not in (401, 403, 404, 405) and status < 500
    return status == want


def _api_calls() -> dict[tuple[str, str], tuple[str, Any]]:
    """(method, schema path) -> (query, body builder) from the endpoint table."""
    renamed = {
        "{patient}": "{patient_id}",
        "{course}": "{course_id}",
        "{test}": "{test_id}",
        "{session}": "{session_id}",
        "{effect}": "{effect_id}",
        "{follow_up}": "{follow_up_id}",
        "{product}": "{product_id}",
        "{lot}": "{lot_id}",
        "{appointment}": "{appointment_id}",
        "{started}": "{appointment_id}",
        "{done_course}": "{course_id}",
        "{event}": "{event_id}",
        "{alert}": "{alert_id}",
        "{vial}": "{vial_id}",
        "{invoice}": "{invoice_id}",
        "{payment}": "{payment_id}",
        "{quote}": "{quote_id}",
        "{missed}": "{appointment_id}",
        "{package}": "{package_id}",
    }
    out: dict[tuple[str, str], tuple[str, Any]] = {}
    for method, path, body, _, _ in ENDPOINTS:
        path, _, query = path.partition("?")
        for short, long in renamed.items():
            path = path.replace(short, long)
        out[(method, path)] = (query, body)
    # Not in the endpoint table (its success needs the card provider's server on loopback):
    # a valid body, so that the access check, not the body's, answers.
    out[("POST", "/invoices/{invoice_id}/checkout")] = (
        "",
        lambda sc: {
            "amount": "10",
            "success_url": "https://x.test/",
            "cancel_url": "https://x.test/",
        },
    )
    return out


def _jpeg() -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.test_photos import jpeg

    return SimpleUploadedFile("side.jpg", jpeg(), content_type="image/jpeg")


# Denied callers go first: they must change nothing, so the objects are as made when the
# allowed callers (whose calls may stop a course or recall a lot) come after.
ORDER = (
    "anonymous",
    "deactivated",
    "patient_other",
    "patient_own",
    "other_clinic",
    "front_desk",
    "practitioner",
    "manager",
)
assert set(ORDER) == set(CALLERS)


class AuthorizationMatrixTests:
    def test_every_route_is_in_the_table(self, db: Any) -> None:
        web = {name for _, name in web_routes()}
        assert web - set(WEB) == set(), "classify these pages in WEB"
        assert set(WEB) - web == set(), "these pages are gone: drop them from WEB"
        operations = set(api_operations())
        assert operations - set(API) == set(), "classify these operations in API"
        assert set(API) - operations == set(), "these operations are gone: drop them from API"

    def test_every_page_answers_every_caller_as_the_table_says(self, objects: Objects) -> None:
        wrong = []
        # Ending a calendar address stops its feed for everyone after, so it is tried last.
        routes = web_routes()
        phases = [
            [(r, n) for r, n in routes if n not in ENDS_A_LINK],
            [(r, n) for r, n in routes if n in ENDS_A_LINK],
        ]
        for phase in phases:
            self._try_pages(objects, phase, wrong)
        assert wrong == [], "\n".join(wrong)

    def _try_pages(self, objects: Objects, routes: list[tuple[str, str]], wrong: list[str]) -> None:
        for who in ORDER:
            for route, name in routes:
                method, level = WEB[name]
                want = expected(level, who, route, api=False)
                # The sign-in pages are tried without a session, so as not to sign anyone out.
                client = Client() if level == PUBLIC else objects.web(who)
                url = objects.fill(route) + WEB_QUERY.get(name, "")
                r = client.post(url) if method == "POST" else client.get(url)
                if not _matches(r.status_code, want):
                    wrong.append(f"{method} {route} as {who}: {r.status_code}, expected {want}")

    def test_every_api_operation_answers_every_caller_as_the_table_says(
        self, objects: Objects
    ) -> None:
        calls = _api_calls()
        wrong = []
        for who in ORDER:
            api = objects.api(who)
            # Signing out ends the caller's token, so it comes after everything else.
            for method, path in sorted(api_operations(), key=lambda op: op == LOGOUT):
                level = API[(method, path)]
                if level == PUBLIC:
                    continue  # Signing in is tests/test_api_auth.py's.
                want = expected(level, who, path, api=True, method=method)
                query, body = calls.get((method, path), ("", None))
                url = objects.fill(path) + (f"?{objects.fill(query)[1:]}" if query else "")
                payload = body(objects.scene) if body is not None else None
                if payload is None:
                    payload = {}  # The API takes only JSON objects, an empty one included.
                if method == "GET":
                    r = api.client.get(f"/api/v1{url}", headers=api._headers())
                elif path == "/courses/{course_id}/photos":
                    upload = {"image": _jpeg(), "area": "thighs", "view": "side"}
                    r = api.client.post(f"/api/v1{url}", upload, headers=api._headers())
                else:
                    r = api.client.generic(
                        method,
                        f"/api/v1{url}",
                        json.dumps(payload, default=str),
                        content_type="application/json",
                        headers=api._headers(),
                    )
                if not _matches(r.status_code, want):
                    wrong.append(f"{method} {path} as {who}: {r.status_code}, expected {want}")
        assert wrong == [], "\n".join(wrong)

    def test_the_admin_needs_a_staff_manager(self, objects: Objects) -> None:
        # The pattern rule for every /admin/ page: the index stands for them all here.
        for who in CALLERS:
            r = objects.web(who).get("/admin/")
            assert r.status_code == 302, (who, r.status_code)
