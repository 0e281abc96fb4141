from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Porte"

    def ready(self) -> None:
        from allauth.mfa.signals import authenticator_added
        from django.contrib.auth.signals import user_logged_in

        from portal.gate import second_factor_added
        from portal.middleware import session_started

        authenticator_added.connect(second_factor_added, dispatch_uid="porte-second-factor-added")
        user_logged_in.connect(session_started, dispatch_uid="porte-session-started")
