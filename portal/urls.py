from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from grants.urls import api_urlpatterns
from partners.oidc import callback as oidc_callback
from portal.views import health

admin.site.site_header = "Porte administration"

urlpatterns = [
    path("", include("partners.urls")),
    # Before allauth's own: the same URL, served by the hardened OIDC callback (nonce, signature, iss).
    path("accounts/oidc/<str:provider_id>/login/callback/", oidc_callback, name="openid_connect_callback"),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("health/", health, name="health"),
    path("api/v1/", include(api_urlpatterns)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("", include("grants.urls")),
]
