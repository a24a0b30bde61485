from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "mesoclinic.portal"
    label = "portal"
    verbose_name = "Patient portal"

    def ready(self) -> None:
        # A cancelled visit's slot is offered to the waitlist (portal/waitlist.py).
        from mesoclinic.portal import waitlist
        from mesoclinic.scheduling.actions import visit_cancelled

        visit_cancelled.connect(waitlist.on_visit_cancelled, dispatch_uid="portal-waitlist")
