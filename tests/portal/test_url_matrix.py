"""Every URL Porte serves, asked by every kind of person, against one table of who each URL is for.

The patterns come from the resolver itself (Porte's, allauth's, the admin's, the API's), so a new URL without a
line in AUDIENCES fails here before anyone can reach it. Each person then asks for every URL (GET; the gate
decides before any view and before any method check, so a POST-only view answers 405 only to its audience):

- someone outside the URL's audience is refused: 404 for a person in standing (the page does not exist for them),
  the sign-in page for a visitor, the second-factor set-up for staff who have none, 401/403 from the API;
- someone inside it is never refused and never gets a server error;
- a person who lost their standing (partner suspended, membership ended, IdP disabled) has their session ended by
  whichever URL they ask for first, and is then a visitor.

URL arguments name objects the asking person may see (their own grant, token, event...), so an object-level 404
from a view is not mistaken for the gate's.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.shortcuts import resolve_url
from django.urls import reverse

from portal.access import Audience as A
from tests.fixtures.everyone import Pattern, Person, client_for, concrete_url, url_patterns

# Who each URL is for, by URL name (unnamed patterns by route). The API's views are listed with the audience
# their permission classes give; the admin's, all staff, by namespace.
AUDIENCES: dict[str, str] = {
    # Porte: visitors
    "health": A.PUBLIC,
    "favicon": A.PUBLIC,
    "sign_in": A.PUBLIC,
    "invitation_open": A.PUBLIC,  # the link answers for itself: what it is for, or why it cannot be used
    # a partner's IT contact holding an opened invitation (tests/partners/test_invitations.py)
    "onboarding": A.INVITED,
    "onboarding_idp": A.INVITED,
    "onboarding_test": A.INVITED,
    "onboarding_mapping": A.INVITED,
    "onboarding_submit": A.INVITED,
    # the Prometheus endpoint: a scraper's bearer token or signed-in staff; nobody else finds it
    "metrics_prometheus": A.STAFF,
    # partner people and staff
    "home": A.SIGNED_IN,
    "api_tokens": A.SIGNED_IN,
    "api_token_revoke": A.SIGNED_IN,
    "grant_detail": A.SIGNED_IN,
    "grant_revoke": A.SIGNED_IN,
    "request_detail": A.SIGNED_IN,
    "request_approve": A.SIGNED_IN,
    "request_deny": A.SIGNED_IN,
    "activity_list": A.SIGNED_IN,
    "activity_lag": A.SIGNED_IN,
    "activity_export": A.SIGNED_IN,
    "activity_detail": A.SIGNED_IN,
    "review_item_decide": A.SIGNED_IN,
    # partner people
    "request_access": A.PARTNER,
    "grant_console": A.PARTNER,
    "grant_cli": A.PARTNER,
    "grant_extend": A.PARTNER,
    "partner_approvals": A.PARTNER,
    "partner_members": A.PARTNER_ADMIN,
    "partner_reviews": A.PARTNER_ADMIN,
    "partner_pipelines": A.PARTNER_ADMIN,
    "partner_pipeline_disable": A.PARTNER_ADMIN,
    # staff
    "staff_home": A.STAFF,
    "partner_list": A.STAFF,
    "partner_create": A.STAFF,
    "partner_detail": A.STAFF,
    "partner_activate": A.STAFF,
    "partner_provision": A.STAFF,
    "partner_idp": A.STAFF,
    "partner_idp_test": A.STAFF,
    "partner_idp_test_result": A.STAFF,
    "partner_access": A.STAFF,
    "invitation_create": A.STAFF,
    "partner_suspend": A.STAFF,
    "partner_offboard": A.STAFF,
    "role_list": A.STAFF,
    "role_create": A.STAFF,
    "role_edit": A.STAFF,
    "role_revoke_sessions": A.STAFF,
    "role_approval_policy": A.STAFF,
    "staff_approvals": A.STAFF,
    "staff_grants": A.STAFF,
    "staff_break_glass": A.STAFF,
    "staff_break_glass_review": A.STAFF,
    "staff_changes": A.STAFF,
    "staff_change_detail": A.STAFF,
    "staff_change_decide": A.STAFF,
    "activity_quarantine": A.STAFF,
    "activity_quarantine_retry": A.STAFF,
    "activity_quarantine_resolve": A.STAFF,
    "review_staff_list": A.STAFF,
    "review_staff_start": A.STAFF,
    "review_staff_detail": A.STAFF,
    "review_staff_report": A.STAFF,
    "review_follow_up_done": A.STAFF,
    "review_settings": A.STAFF,
    "alert_list": A.STAFF,
    "alert_acknowledge": A.STAFF,
    "metrics_dashboard": A.STAFF,
    # a partner's directory (SCIM 2.0) with its token: no person (tests/directory/)
    "scim:root": A.DIRECTORY,
    "scim:search": A.DIRECTORY,
    "scim:users-search": A.DIRECTORY,
    "scim:users": A.DIRECTORY,
    "scim:groups-search": A.DIRECTORY,
    "scim:groups": A.DIRECTORY,
    "scim:me": A.DIRECTORY,
    "scim:service-provider-config": A.DIRECTORY,
    "scim:resource-types": A.DIRECTORY,
    "scim:schemas": A.DIRECTORY,
    "scim:bulk": A.DIRECTORY,
    "scim:unknown": A.DIRECTORY,
    "directory_token": A.STAFF,
    "directory_off": A.STAFF,
    "workload_approve": A.STAFF,
    "workload_disable": A.STAFF,
    # the REST API
    "api_me": A.SIGNED_IN,
    "api_roles": A.SIGNED_IN,
    "api_grants": A.SIGNED_IN,
    "api_grant": A.SIGNED_IN,
    "api_grant_credentials": A.SIGNED_IN,
    "api_access_requests": A.SIGNED_IN,
    "api_request_approve": A.SIGNED_IN,
    "api_request_deny": A.SIGNED_IN,
    "api_activity": A.SIGNED_IN,
    "api_schema": A.PUBLIC,  # the API's description: what it offers is no secret
    "api_docs": A.PUBLIC,  # Swagger UI over the schema
    "api_index": A.PUBLIC,  # where the schema, the docs and the collections are
    "api_partners": A.STAFF,
    # partners' pipelines: the list is scoped (partner admins, staff), the exchange takes a CI token, no session
    "api_workloads": A.SIGNED_IN,
    "api_workload_exchange": A.PUBLIC,
    "api_workload_approve": A.SIGNED_IN,
    "api_workload_disable": A.SIGNED_IN,
    "api_partner_create": A.STAFF,
    "api_partner_idp": A.STAFF,
    # allauth: staff's local accounts; partner people have none
    "account_login": A.PUBLIC,
    "account_logout": A.PUBLIC,
    "account_inactive": A.PUBLIC,
    "account_reauthenticate": A.STAFF_ACCOUNT,
    "account_email": A.STAFF_ACCOUNT,
    "account_change_password": A.STAFF_ACCOUNT,
    "account_set_password": A.STAFF_ACCOUNT,
    "account_reset_password": A.STAFF_OR_ANONYMOUS,
    "account_reset_password_done": A.STAFF_OR_ANONYMOUS,
    "account_reset_password_from_key": A.STAFF_OR_ANONYMOUS,
    "account_reset_password_from_key_done": A.STAFF_OR_ANONYMOUS,
    "mfa_authenticate": A.PUBLIC,
    "mfa_index": A.STAFF_ACCOUNT,
    "mfa_reauthenticate": A.STAFF_ACCOUNT,
    "mfa_activate_totp": A.STAFF_ACCOUNT,
    "mfa_deactivate_totp": A.STAFF_ACCOUNT,
    "mfa_view_recovery_codes": A.STAFF_ACCOUNT,
    "mfa_generate_recovery_codes": A.STAFF_ACCOUNT,
    "mfa_download_recovery_codes": A.STAFF_ACCOUNT,
    "account_signup": A.CLOSED,
    "account_request_reauthentication_code": A.CLOSED,
    "account_confirm_reauthentication_code": A.CLOSED,
    "account_confirm_login_code": A.CLOSED,
    "account_email_verification_sent": A.CLOSED,
    "account_confirm_email": A.CLOSED,
    # allauth: the partner IdPs' protocol endpoints (the adapters decide who gets in)
    "openid_connect_login": A.PUBLIC,
    "openid_connect_callback": A.PUBLIC,
    "openid_connect_backchannel_logout": A.PUBLIC,  # the IdP's logout token (tests/partners/test_backchannel_logout.py)
    "saml_login": A.PUBLIC,
    "saml_acs": A.PUBLIC,
    "saml_finish_acs": A.PUBLIC,
    "saml_sls": A.PUBLIC,  # the IdP's LogoutRequest (tests/partners/test_saml_logout.py)
    "saml_metadata": A.PUBLIC,
    "socialaccount_login_cancelled": A.PUBLIC,
    "socialaccount_login_error": A.PUBLIC,
    # identities are (IdP, subject): no sign-up, no linking, no list of every partner's IdP
    "socialaccount_signup": A.CLOSED,
    "socialaccount_connections": A.CLOSED,
    "accounts/social/login/cancelled/": A.CLOSED,
    "accounts/social/login/error/": A.CLOSED,
    "accounts/social/signup/": A.CLOSED,
    "accounts/social/connections/": A.CLOSED,
}
NAMESPACE_AUDIENCES = {"admin": A.STAFF}

# In-audience answers that look like refusals and are not the gate's: the reason is the URL's own protocol.
OWN_REFUSALS = {
    # a callback or response with no sign-in started in this browser is a refused sign-in (recorded)
    "openid_connect_callback": "no sign-in in progress",
    "saml_acs": "no SAML response",
    "saml_finish_acs": "no SAML response",
    "saml_sls": "no logout request",
    # asks for the code of a sign-in in progress: without one, back to the sign-in page
    "mfa_authenticate": "no sign-in in progress",
    "socialaccount_login_error": "the page that says a sign-in failed (401)",
    "account_reauthenticate": "staff re-authenticate with their password",
    # allauth's pages for factors a staff member does not have (no TOTP to remove, no recovery codes set up)
    "mfa_deactivate_totp": "no TOTP to deactivate",
    "mfa_view_recovery_codes": "recovery codes are not offered",
    "mfa_download_recovery_codes": "recovery codes are not offered",
}
# Inside the admin, Django's model permissions decide (Porte's admin is read-only; staff without model
# permissions get 403, unknown objects and pages 404).
NAMESPACES_WITH_OWN_REFUSALS = {"admin"}

ACTORS = (
    "anonymous",
    "member",
    "approver",
    "partner_admin",
    "suspended_partner",
    "removed_member",
    "idp_disabled",
    "staff_without_mfa",
    "staff",
    "invited_contact",
)
WITHOUT_STANDING = {"suspended_partner", "removed_member", "idp_disabled"}
REACHES: dict[str, set[str]] = {
    "anonymous": {A.PUBLIC, A.STAFF_OR_ANONYMOUS},
    "member": {A.PUBLIC, A.SIGNED_IN, A.PARTNER},
    "approver": {A.PUBLIC, A.SIGNED_IN, A.PARTNER},
    "partner_admin": {A.PUBLIC, A.SIGNED_IN, A.PARTNER, A.PARTNER_ADMIN},
    "staff_without_mfa": {A.PUBLIC, A.STAFF_ACCOUNT},
    "staff": {A.PUBLIC, A.SIGNED_IN, A.STAFF, A.STAFF_ACCOUNT, A.STAFF_OR_ANONYMOUS},
    # no account: a visitor whose browser opened a partner's onboarding invitation
    "invited_contact": {A.PUBLIC, A.STAFF_OR_ANONYMOUS, A.INVITED},
}
for _lost in WITHOUT_STANDING:
    REACHES[_lost] = REACHES["anonymous"]  # their session ends: they ask as a visitor


def expected_audience(pattern: Pattern) -> str | None:
    if pattern.key in AUDIENCES:
        return AUDIENCES[pattern.key]
    if pattern.name is not None and ":" in pattern.name:
        return NAMESPACE_AUDIENCES.get(pattern.name.partition(":")[0])
    # the admin's unnamed patterns (its redirects and catch-all) live under its prefix
    return NAMESPACE_AUDIENCES.get(pattern.route.partition("/")[0])


def test_every_url_has_an_audience_in_the_table() -> None:
    patterns = list(url_patterns())
    assert len(patterns) > 200  # Porte's, allauth's, the API's and the admin's
    missing = sorted({p.key for p in patterns if expected_audience(p) is None})
    assert not missing, f"URLs without an expected audience (add them to AUDIENCES): {missing}"
    stale = sorted(set(AUDIENCES) - {p.key for p in patterns})
    assert not stale, f"AUDIENCES names URLs that no longer exist: {stale}"


def test_porte_views_declare_the_audience_the_table_expects() -> None:
    """Porte's own views carry their audience (portal.access.audience); the API's are decided by DRF and the
    library views by portal.gate.LIBRARY_AUDIENCES, both exercised by the requests below."""
    wrong = {}
    for pattern in url_patterns():
        declared = getattr(pattern.callback, "porte_audience", None)
        expected = expected_audience(pattern)
        if declared is not None and declared != expected and pattern.key != "metrics_prometheus":
            wrong[pattern.key] = (declared, expected)
    assert not wrong, wrong


# --- the requests ---------------------------------------------------------------------------------------------


def has_own_refusals(pattern: Pattern) -> bool:
    namespace = (pattern.name or "").partition(":")[0] if ":" in (pattern.name or "") else None
    return (
        pattern.key in OWN_REFUSALS
        or namespace in NAMESPACES_WITH_OWN_REFUSALS
        or pattern.route.partition("/")[0] in NAMESPACES_WITH_OWN_REFUSALS
    )


def refused(response: Any) -> bool:
    if response.status_code in (401, 403, 404):
        return True
    if response.status_code in (301, 302):
        location = response["Location"]
        return location.startswith((resolve_url(settings.LOGIN_URL), reverse("mfa_activate_totp")))
    return False


@pytest.mark.aws
@pytest.mark.django_db
def test_every_url_answers_each_person_as_the_table_says(people: dict[str, Person]) -> None:
    patterns = [p for p in url_patterns()]
    failures: list[str] = []
    requests = 0
    for actor in ACTORS:
        person = people[actor]
        client = client_for(person)
        seen: set[str] = set()
        for pattern in patterns:
            url = concrete_url(pattern, person.args)
            if url in seen:
                continue  # a pattern Porte overrides: the first one answers
            seen.add(url)
            if actor in WITHOUT_STANDING:
                client = client_for(person)  # every URL must end the session, not only the first one asked
            response = client.get(url)
            requests += 1
            audience = expected_audience(pattern)
            inside = audience in REACHES[actor]
            where = f"{actor} GET {url} ({pattern.key}, {audience}) -> {response.status_code}"
            if response.status_code >= 500:
                failures.append(f"{where}: server error")
            elif inside and refused(response) and not has_own_refusals(pattern):
                failures.append(f"{where}: refused, but the URL is for them")
            elif not inside and not refused(response):
                failures.append(f"{where}: answered, but the URL is not for them")
            if actor in WITHOUT_STANDING and "_auth_user_id" in client.session:
                failures.append(f"{where}: the session of a person without standing was not ended")
    print(
        f"URL matrix: {requests} requests, {len(patterns)} patterns, {len(ACTORS)} kinds of person"
    )  # with -s
    assert requests > len(ACTORS) * 200
    assert not failures, f"{len(failures)} of {requests} answers are wrong:\n" + "\n".join(failures)
