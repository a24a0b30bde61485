from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "mesoclinic.accounts"
    label = "accounts"

    def ready(self) -> None:
        # The idle timeout stamps a session when its user signs in (middleware.py); signing in
        # with the password unlocks a tablet PIN locked by wrong tries (pins.py).
        from mesoclinic.accounts import middleware, pins  # noqa: F401
