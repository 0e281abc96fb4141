from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Porte"

    def ready(self) -> None:
        from allauth.mfa.signals import authenticator_added

        from portal.gate import second_factor_added

        authenticator_added.connect(second_factor_added, dispatch_uid="porte-second-factor-added")
