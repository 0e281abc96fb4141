from django.urls import path

from partners import api, onboarding_views, views

urlpatterns = [
    path("sign-in/", views.sign_in, name="sign_in"),
    # Self-service onboarding: staff invite the partner's IT contact, who sets up its IdP.
    path("staff/partners/<slug:slug>/invite/", onboarding_views.invitation_create, name="invitation_create"),
    path("onboard/<str:token>/", onboarding_views.invitation_open, name="invitation_open"),
    path("onboarding/", onboarding_views.onboarding, name="onboarding"),
    path("onboarding/idp/<str:protocol>/", onboarding_views.onboarding_idp, name="onboarding_idp"),
    path("onboarding/test/", onboarding_views.onboarding_test, name="onboarding_test"),
    path("onboarding/mapping/", onboarding_views.onboarding_mapping, name="onboarding_mapping"),
    path("onboarding/submit/", onboarding_views.onboarding_submit, name="onboarding_submit"),
    path("staff/partners/", views.partner_list, name="partner_list"),
    path("staff/partners/new/", views.partner_create, name="partner_create"),
    path("staff/partners/<slug:slug>/", views.partner_detail, name="partner_detail"),
    path("staff/partners/<slug:slug>/activate/", views.partner_activate, name="partner_activate"),
    path("staff/partners/<slug:slug>/provision/", views.partner_provision, name="partner_provision"),
    path("staff/partners/<slug:slug>/idp/<str:protocol>/", views.partner_idp, name="partner_idp"),
    path("staff/partners/<slug:slug>/idp-test/", views.partner_idp_test, name="partner_idp_test"),
    # The partner's access window, networks and webhook.
    path("staff/partners/<slug:slug>/access/", views.partner_access, name="partner_access"),
    path(
        "staff/idp/<slug:provider_id>/test-result/",
        views.partner_idp_test_result,
        name="partner_idp_test_result",
    ),
]

api_urlpatterns = [
    path("partners/", api.PartnerList.as_view(), name="api_partners"),
    path("partners/new/", api.partner_create, name="api_partner_create"),
    path("partners/<slug:slug>/idp/", api.identity_provider_create, name="api_partner_idp"),
]
