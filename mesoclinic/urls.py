from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from oauth2_provider.views import RevokeTokenView

from mesoclinic.accounts import views as accounts
from mesoclinic.api.views import api
from mesoclinic.fhir import smart

admin.site.site_header = "mesoclinic"
admin.site.site_title = "mesoclinic"

urlpatterns = [
    path("", RedirectView.as_view(url="/today/", permanent=False)),
    # Every way to sign in is throttled (accounts/throttle.py): these come before the
    # routes they replace.
    path("accounts/login/", accounts.login, name="login"),
    path("accounts/password_reset/", accounts.password_reset, name="password_reset"),
    path("admin/login/", accounts.admin_login),
    path("accounts/", include("django.contrib.auth.urls")),
    path("r/", include("mesoclinic.reminders.urls")),
    path("w/", include("mesoclinic.safety.urls")),
    # The patient portal: a patient's own login (mesoclinic/portal).
    path("my/", include("mesoclinic.portal.urls")),
    path("n/", include("mesoclinic.notify.urls")),
    # Each clinic's public site: no login (mesoclinic/site/).
    path("site/", include("mesoclinic.site.urls")),
    # The FHIR R4B API (mesoclinic/fhir, docs/fhir.md): read and search, bearer token or session.
    path("fhir/R4B/", include("mesoclinic.fhir.urls")),
    # SMART App Launch's OAuth2 server (mesoclinic/fhir/smart.py).
    path("oauth/authorize/", smart.Authorize.as_view(), name="smart_authorize"),
    path("oauth/token/", smart.Token.as_view(), name="smart_token"),
    path("oauth/revoke/", RevokeTokenView.as_view(), name="smart_revoke"),
    path("oauth/apps/", smart.my_apps, name="smart_apps_mine"),
    path("", include("mesoclinic.web.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
]
