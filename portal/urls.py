from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from activity.urls import api_urlpatterns as activity_api_urlpatterns
from approvals.urls import api_urlpatterns as approval_api_urlpatterns
from directory.urls import scim_urlpatterns
from directory.urls import staff_urlpatterns as directory_staff_urlpatterns
from grants.urls import api_urlpatterns as grant_api_urlpatterns
from partners.logout import backchannel_logout, saml_single_logout
from partners.oidc import callback as oidc_callback
from partners.saml import finish_acs as saml_finish_acs
from partners.urls import api_urlpatterns as partner_api_urlpatterns
from portal import api as portal_api
from portal.access import public
from portal.views import api_token_revoke, api_tokens, favicon, health
from workloads.urls import api_urlpatterns as workload_api_urlpatterns
from workloads.urls import console_urlpatterns as workload_console_urlpatterns

admin.site.site_header = "Porte administration"

urlpatterns = [
    path("", include("partners.urls")),
    path("", include(directory_staff_urlpatterns)),
    path("", include(workload_console_urlpatterns)),
    # SCIM 2.0 for partners' directories: one base URL, the bearer token says whose directory it is.
    path("scim/v2/", include((scim_urlpatterns, "scim"))),
    # Before allauth's own: the same URL, served by the hardened OIDC callback (nonce, signature, iss).
    path("accounts/oidc/<str:provider_id>/login/callback/", oidc_callback, name="openid_connect_callback"),
    # The partner IdP's OpenID Connect Back-Channel Logout: it ends the sessions its logout token names.
    path(
        "accounts/oidc/<str:provider_id>/backchannel-logout/",
        backchannel_logout,
        name="openid_connect_backchannel_logout",
    ),
    # Likewise for SAML: a response with a DOCTYPE or malformed XML is a refused sign-in, not a server error.
    path("accounts/saml/<str:organization_slug>/acs/finish/", saml_finish_acs, name="saml_finish_acs"),
    # The partner IdP's SAML Single Logout: it ends the sessions its LogoutRequest names, in whichever browser.
    path("accounts/saml/<str:organization_slug>/sls/", saml_single_logout, name="saml_sls"),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("health/", health, name="health"),
    path("favicon.ico", favicon, name="favicon"),
    path("tokens/", api_tokens, name="api_tokens"),
    path("tokens/<int:token_id>/revoke/", api_token_revoke, name="api_token_revoke"),
    path("api/v1/", portal_api.index, name="api_index"),
    path("api/v1/me/", portal_api.me, name="api_me"),
    path("api/v1/", include(grant_api_urlpatterns)),
    path("api/v1/", include(approval_api_urlpatterns)),
    path("api/v1/", include(activity_api_urlpatterns)),
    path("api/v1/", include(partner_api_urlpatterns)),
    path("api/v1/", include(workload_api_urlpatterns)),
    # The API's description is no secret: anyone may read it (the gate would otherwise treat it as an API call).
    path("api/schema/", public(SpectacularAPIView.as_view()), name="api_schema"),
    path("api/docs/", public(portal_api.ApiDocs.as_view()), name="api_docs"),
    path("", include("home.urls")),
    path("", include("grants.urls")),
    path("", include("approvals.urls")),
    path("", include("reviews.urls")),
    path("", include("activity.urls")),
]
