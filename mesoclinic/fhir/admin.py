"""The admin keeps no page of SMART apps or their tokens: a clinic's apps are its managers'
(Setup, "Apps that read the clinic's records"), each person's tokens are their own ("Apps you
have allowed"), and the admin's pages would list every clinic's together."""

from django.contrib import admin
from oauth2_provider.models import (
    get_access_token_model,
    get_application_model,
    get_grant_model,
    get_id_token_model,
    get_refresh_token_model,
)

for model in (
    get_application_model(),
    get_access_token_model(),
    get_refresh_token_model(),
    get_grant_model(),
    get_id_token_model(),
):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
