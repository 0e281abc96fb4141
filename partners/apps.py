from django.apps import AppConfig


class PartnersConfig(AppConfig):
    name = "partners"

    def ready(self) -> None:
        from allauth.account.signals import user_logged_in

        from partners.logout import signed_in

        # A sign-in through a partner's IdP is noted under the IdP's names for it (its logout uses them).
        user_logged_in.connect(signed_in, dispatch_uid="porte-federated-session")
