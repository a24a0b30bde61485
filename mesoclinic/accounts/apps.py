from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "mesoclinic.accounts"
    label = "accounts"

    def ready(self) -> None:
        # The idle timeout stamps a session when its user signs in (middleware.py).
        from mesoclinic.accounts import middleware  # noqa: F401
