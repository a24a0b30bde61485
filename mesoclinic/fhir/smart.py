"""SMART App Launch for the FHIR API: apps a clinic registers sign its staff and patients in
with OAuth2 (django-oauth-toolkit: the authorization code with PKCE, refresh and revocation),
and read FHIR with the SMART scopes they were granted.

- A clinic's managers register an app (`/manage/apps/`): its name, where it returns to, and
  whether it keeps a secret (a server) or not (a phone or browser app, which must use PKCE).
- The app sends the person to `/oauth/authorize/`. They sign in (staff on the staff sign-in
  page, patients on the portal's), read what the app asks for in words, and allow or refuse.
  An app is for its own clinic's people only.
- The token then reads FHIR as that person through the access layer, as their own sign-in
  would, and no further than its scopes: `patient/…` scopes are a patient's own records and
  are granted to patients only; `user/…` scopes are what the person may see. A token's
  scopes name each type (`patient/Observation.read`) or every type (`patient/*.read`), in
  SMART's first form (`.read`) or its second (`.rs`).
- `/fhir/R4B/.well-known/smart-configuration` tells an app where to go and what is supported.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlencode, urlsplit

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from oauth2_provider.models import AccessToken, Grant, RefreshToken
from oauth2_provider.oauth2_backends import get_oauthlib_core
from oauth2_provider.scopes import BaseScopes
from oauth2_provider.views import AuthorizationView, TokenView

from mesoclinic import access
from mesoclinic.access import MANAGE, PATIENT, Caller, caller_from_request
from mesoclinic.accounts.models import AuditEvent, Membership, audit
from mesoclinic.patients.models import Patient

# What each type is, in the words of the patient (`patient/…`) and of staff (`user/…`).
TYPE_WORDS: dict[str, tuple[str, str]] = {
    "Patient": ("your personal details", "patients' personal details"),
    "Organization": ("the clinic's details", "the clinic's details"),
    "Practitioner": ("the clinic's practitioners", "the clinic's practitioners"),
    "PractitionerRole": ("the practitioners' roles", "the practitioners' roles"),
    "Location": ("the clinic's rooms", "the clinic's rooms"),
    "Procedure": ("your treatment sessions", "treatment sessions"),
    "MedicationAdministration": ("the injections you were given", "the injections given"),
    "Observation": ("your measurements", "measurements"),
    "AllergyIntolerance": ("your allergies", "allergies"),
    "Consent": ("your signed consents", "signed consents"),
    "CarePlan": ("your courses of treatment", "courses of treatment"),
    "Appointment": ("your visits", "visits"),
    "AdverseEvent": ("your side effects", "side effects"),
    "Questionnaire": ("the clinic's screening forms", "the clinic's screening forms"),
    "QuestionnaireResponse": ("your screening answers", "screening answers"),
    "DocumentReference": ("your clinical photos", "clinical photos"),
}
READS = ("read", "rs")  # SMART v1's `.read` and v2's `.rs` (read and search)
OTHER_SCOPES = {
    "openid": "Know who you are",
    "launch/patient": "Know whose records it reads",
    "fhirUser": "Know who you are in the clinic's records",
    "offline_access": "Keep its access while you are not using it, until you withdraw it",
    "online_access": "Keep its access while you are using it",
}


def scope_words() -> dict[str, str]:
    """Every scope an app may ask for, with the sentence the person reads before allowing it."""
    out = {}
    for read in READS:
        out[f"patient/*.{read}"] = "Read all of your records"
        out[f"user/*.{read}"] = "Read every record you may see at the clinic"
        for kind, (own, staff) in TYPE_WORDS.items():
            out[f"patient/{kind}.{read}"] = f"Read {own}"
            out[f"user/{kind}.{read}"] = f"Read {staff} that you may see"
    return {**out, **OTHER_SCOPES}


class SmartScopes(BaseScopes):
    """django-oauth-toolkit's scopes: SMART's, the same for every app."""

    def get_all_scopes(self) -> dict[str, str]:
        return scope_words()

    def get_available_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        return list(scope_words())

    def get_default_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        return []


# Which person an app acts for.


def app_clinic_id(application: Any) -> int | None:
    found = getattr(application, "smart_app", None)
    return found.clinic_id if found is not None else None


def app_clinic(application: Any) -> Any:
    found = getattr(application, "smart_app", None)
    return found.clinic if found is not None else None


def caller_for(user: Any, clinic_id: int | None) -> Caller | None:
    """The caller a token is: its user acting in the app's clinic, as staff (their membership
    there) or as the patient whose login it is. None for anyone else."""
    if user is None or not user.is_active or clinic_id is None:
        return None
    member = (
        Membership.objects.filter(user=user, clinic_id=clinic_id, deactivated_at__isnull=True)
        .select_related("clinic")
        .first()
    )
    if member is not None:
        return Caller(user=user, membership=member, via="smart")
    own = Patient.objects.filter(user=user, clinic_id=clinic_id).select_related("clinic").first()
    if own is not None:
        return Caller(user=user, patient=own, via="smart")
    return None


def caller_from_access_token(
    request: HttpRequest,
) -> tuple[Caller, frozenset[str], str] | None:
    """The caller, scopes and app's name of an OAuth2 access token in the request's
    Authorization header; None for a token that is unknown, expired or revoked, or whose
    person no longer belongs to the app's clinic."""
    valid, oauth = get_oauthlib_core().verify_request(request, scopes=[])
    token = getattr(oauth, "access_token", None) if valid else None
    if not isinstance(token, AccessToken) or token.application is None:
        return None
    made = caller_for(token.user, app_clinic_id(token.application))
    if made is None:
        return None
    return made, frozenset(token.scope.split()), str(token.application.name)


def allows(scopes: frozenset[str], caller: Caller, resource_type: str) -> bool:
    """Whether the scopes let the caller read `resource_type`: `user/` scopes for anyone the
    token acts for, `patient/` scopes for a patient's own records."""
    contexts = ("user", "patient") if caller.role == PATIENT else ("user",)
    return any(
        f"{context}/{kind}.{read}" in scopes
        for context in contexts
        for kind in ("*", resource_type)
        for read in READS
    )


def refusal(scopes: frozenset[str], caller: Caller, resource_type: str | None) -> str:
    """Why the scopes do not let the caller read `resource_type` (every type when None)."""
    if caller.role != PATIENT and any(s.startswith("patient/") for s in scopes):
        return (
            "This app was allowed a patient's own records, and only a patient signing in can "
            "allow that; ask for user scopes instead."
        )
    what = resource_type or "every type (user/*.read)"
    return f"This app was not allowed to read {what}."


# The pages and endpoints.


def configuration(request: HttpRequest) -> HttpResponse:
    """SMART's discovery document: open to anyone, as apps read it before signing in."""
    data = {
        "issuer": request.build_absolute_uri("/fhir/R4B"),
        "authorization_endpoint": request.build_absolute_uri(reverse("smart_authorize")),
        "token_endpoint": request.build_absolute_uri(reverse("smart_token")),
        "revocation_endpoint": request.build_absolute_uri(reverse("smart_revoke")),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": sorted(scope_words()),
        "capabilities": [
            "launch-standalone",
            "client-public",
            "client-confidential-symmetric",
            "context-standalone-patient",
            "permission-patient",
            "permission-user",
            "permission-offline",
            "permission-v1",
            "permission-v2",
        ],
    }
    response = HttpResponse(json.dumps(data), content_type="application/json")
    response["Access-Control-Allow-Origin"] = "*"
    return response


class Authorize(AuthorizationView):
    """The page where a person allows an app, in the product's own pages. Someone not signed in
    chooses how to sign in (staff or patient) and comes back here."""

    template_name = "fhir/authorize.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if not request.user.is_authenticated:
            back = request.get_full_path()
            return render(
                request,
                "fhir/authorize_sign_in.html",
                {
                    "staff": f"{reverse('login')}?{_next(back)}",
                    "patient": f"{reverse('portal:login')}?{_next(back)}",
                },
            )
        return super().dispatch(request, *args, **kwargs)

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        refused = self._refused(request)
        if refused:
            return render(
                request, self.template_name, {"refused": refused, **_frame(request)}, status=403
            )
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), **_frame(self.request)}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        refused = self._refused(request)
        if refused:
            return render(
                request, self.template_name, {"refused": refused, **_frame(request)}, status=403
            )
        return super().post(request, *args, **kwargs)

    def _refused(self, request: HttpRequest) -> str:
        """Why this person may not allow this app, in words; empty when they may."""
        from oauth2_provider.models import get_application_model

        client_id = request.GET.get("client_id") or request.POST.get("client_id") or ""
        app = get_application_model().objects.filter(client_id=client_id).first()
        if app is None:
            return ""  # django-oauth-toolkit answers an unknown app itself.
        made = caller_for(request.user, app_clinic_id(app))
        if made is None:
            return f"{app.name} is registered with another clinic, not with yours."
        wanted = (request.GET.get("scope") or request.POST.get("scope") or "").split()
        if made.role != PATIENT and any(s.startswith("patient/") for s in wanted):
            return (
                f"{app.name} asks for a patient's own records. Only the patient can allow "
                "that, by signing in to the portal."
            )
        return ""


def _next(path: str) -> str:
    return urlencode({"next": path})


class Token(TokenView):
    """The token endpoint: a patient's token also names their Patient resource (`patient`),
    as SMART's patient context does."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        # One transaction: a code is spent by deleting its grant after the token is saved, so
        # a second exchange of the same code at the same moment waits on the first's delete,
        # finds nothing to delete, and is refused with its token rolled back. A refresh token
        # is locked while it is used; a refused one keeps what its refusal wrote (a replayed
        # refresh token revokes the tokens it led to).
        code = request.POST.get("grant_type") == "authorization_code"
        try:
            with transaction.atomic():
                if code:
                    # The code's grant is locked first, so a second exchange of it waits here
                    # until the first has spent it, then finds no grant and is refused.
                    grants = Grant.objects.select_for_update().filter(
                        code=request.POST.get("code", "")
                    )
                    list(grants.values_list("pk", flat=True))
                response = super().post(request, *args, **kwargs)
                if response.status_code != 200 and code:
                    transaction.set_rollback(True)
        except Grant.DoesNotExist:
            return _refused_grant("This code was used by another request just now.")
        except AccessToken.DoesNotExist:
            # Two uses of one refresh token at once: django-oauth-toolkit answers the second
            # with the first's new token, which it keeps only hashed, so it cannot; the second
            # is refused instead, as a refresh token used twice is.
            return _refused_grant("This refresh token was used by another request just now.")
        if response.status_code != 200:
            return response
        body = json.loads(response.content)
        token = (
            AccessToken.objects.filter(token_checksum=_checksum(body.get("access_token", "")))
            .select_related("application__smart_app", "user")
            .first()
        )
        if token is not None and token.application is not None:
            made = caller_for(token.user, app_clinic_id(token.application))
            if made is not None and made.patient is not None:
                body["patient"] = str(made.patient.pk)
            if made is not None and "fhirUser" in token.scope.split():
                body["fhirUser"] = (
                    f"Patient/{made.patient.pk}"
                    if made.patient is not None
                    else f"Practitioner/{made.user.pk}"
                )
        response.content = json.dumps(body)
        return response


def _refused_grant(description: str) -> HttpResponse:
    body = {"error": "invalid_grant", "error_description": description}
    response = HttpResponse(json.dumps(body), status=400, content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response


def _checksum(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@transaction.atomic
def register(clinic: Any, by: Any, name: str, redirect_uris: str, confidential: bool) -> Any:
    """A new app of the clinic; returns (app, its secret in the clear, shown once)."""
    from oauth2_provider.generators import generate_client_secret
    from oauth2_provider.models import get_application_model

    from mesoclinic.fhir.models import SmartApp

    secret = generate_client_secret() if confidential else ""
    Application = get_application_model()
    app = Application.objects.create(
        name=name,
        user=by,
        redirect_uris=redirect_uris,
        client_type=Application.CLIENT_CONFIDENTIAL if confidential else Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        client_secret=secret,
        algorithm="",
        skip_authorization=False,
    )
    SmartApp.objects.create(clinic=clinic, application=app, registered_by=by)
    return app, secret


# The clinic's apps (managers) and a person's own allowed apps.


class AppForm(forms.Form):
    name = forms.CharField(
        label="The app's name",
        max_length=100,
        help_text="People read it when the app asks for their records.",
    )
    redirect_uris = forms.CharField(
        label="Where the app returns after sign-in",
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="The app's redirect addresses, one a line, exactly as the app sends them.",
    )
    confidential = forms.BooleanField(
        label="The app runs on a server that keeps a secret",
        required=False,
        help_text="Leave this unticked for an app on a phone or in a browser: it signs in with "
        "PKCE and no secret.",
    )

    def clean_redirect_uris(self) -> str:
        lines = [line.strip() for line in self.cleaned_data["redirect_uris"].splitlines()]
        uris = [line for line in lines if line]
        for uri in uris:
            parts = urlsplit(uri)
            local = parts.hostname in ("localhost", "127.0.0.1")
            if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
                raise forms.ValidationError(
                    f"{uri} is not a web address an app can return to (https://…, with no #)."
                )
            if parts.scheme == "http" and not local:
                raise forms.ValidationError(
                    f"{uri} must use https; plain http is only for an app on this computer "
                    "(localhost)."
                )
        if not uris:
            raise forms.ValidationError("Give at least one address.")
        return " ".join(uris)


@login_required
def manage_apps(request: HttpRequest) -> HttpResponse:
    """The clinic's SMART apps: register one, see them, remove one (its tokens go with it)."""
    who = caller_from_request(request)
    acting = who.require(MANAGE)
    form = AppForm(request.POST) if request.POST.get("action") == "register" else AppForm()
    made: tuple[Any, str] | None = None
    if request.method == "POST" and request.POST.get("action") == "remove":
        found = access.access_smart_app(who, _int(request.POST.get("app")), MANAGE)
        name = found.application.name
        audit(
            clinic=acting.clinic,
            user=request.user,
            action=AuditEvent.Action.DELETE,
            obj=found,
            via="web",
            app=name,
        )
        found.application.delete()
        messages.success(request, f"{name} was removed; it can read nothing more.")
        return redirect("web:manage_apps")
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        app, secret = register(
            acting.clinic, request.user, data["name"], data["redirect_uris"], data["confidential"]
        )
        audit(
            clinic=acting.clinic,
            user=request.user,
            action=AuditEvent.Action.CREATE,
            obj=app.smart_app,
            via="web",
            app=app.name,
        )
        made = (app, secret)
        form = AppForm()
    apps = access.smart_apps_for(who, MANAGE).order_by("application__name")
    base = request.build_absolute_uri("/fhir/R4B/")
    return render(
        request,
        "fhir/manage_apps.html",
        {"page": "setup", "form": form, "apps": apps, "made": made, "base": base},
        status=422 if form.errors else 200,
    )


def _int(value: str | None) -> int:
    return int(value) if value and value.isdigit() and len(value) < 19 else 0


@login_required
def my_apps(request: HttpRequest) -> HttpResponse:
    """The apps the signed-in person allowed, each with what it may read; withdrawing one
    revokes its tokens."""
    user = request.user
    tokens = AccessToken.objects.filter(user=user, application__isnull=False).select_related(
        "application__smart_app__clinic"
    )
    if request.method == "POST":
        app_id = _int(request.POST.get("app"))
        gone = [t for t in tokens if t.application_id == app_id]
        if gone:
            app = gone[0].application
            RefreshToken.objects.filter(user=user, application_id=app_id).delete()
            AccessToken.objects.filter(user=user, application_id=app_id).delete()
            audit(
                clinic=app_clinic(app),
                user=user,
                action=AuditEvent.Action.DELETE,
                object_type="oauth2_provider.AccessToken",
                via="web",
                app=app.name,
            )
            messages.success(request, f"{app.name} can read nothing more for you.")
        return redirect("smart_apps_mine")
    words = scope_words()
    allowed: dict[int, dict[str, Any]] = {}
    for token in tokens.order_by("created"):
        row = allowed.setdefault(
            token.application_id,
            {
                "pk": token.application_id,
                "name": token.application.name,
                "since": token.created,
                "clinic": app_clinic(token.application),
            },
        )
        row.setdefault("scopes", set()).update(token.scope.split())
    rows = []
    for row in allowed.values():
        granted = row.pop("scopes")
        row["words"] = [text for scope, text in words.items() if scope in granted]
        rows.append(row)
    return render(request, "fhir/my_apps.html", {"allowed": rows, **_frame(request)})


def _frame(request: HttpRequest) -> dict[str, Any]:
    """A patient reads these pages in the portal's frame, staff in the staff pages'."""
    found = caller_from_request(request)
    if found.role == PATIENT and found.patient is not None:
        return {"base_template": "portal/base.html", "clinic": found.patient.clinic}
    return {"base_template": "base.html"}
