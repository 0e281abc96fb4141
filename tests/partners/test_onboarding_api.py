"""The staff onboarding API: same validation as the console, staff only, nothing saved half-way."""

from __future__ import annotations

import pytest
from django.test import Client

from partners.models import IdentityProvider, Partner
from tests.fixtures.domain import make_member, sign_in_as
from tests.peers.oidc_idp import OidcIdp

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(staff) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    sign_in_as(client, staff)
    return client


def test_partner_users_and_anonymous_cannot_onboard(acme, alice) -> None:  # type: ignore[no-untyped-def]
    partner_client = Client()
    sign_in_as(partner_client, alice)
    body = {"name": "Initech", "slug": "initech", "domains": ["initech.example"]}
    assert (
        partner_client.post("/api/v1/partners/new/", body, content_type="application/json").status_code == 403
    )
    assert Client().post("/api/v1/partners/new/", body, content_type="application/json").status_code == 403
    assert partner_client.get("/api/v1/partners/").status_code == 403
    assert not Partner.objects.filter(slug="initech").exists()


def test_create_partner_validates_domains_and_slug(staff_client: Client, staff) -> None:  # type: ignore[no-untyped-def]
    bad = staff_client.post(
        "/api/v1/partners/new/",
        {"name": "Initech", "slug": "initech", "domains": ["initech.example", "bad_domain"]},
        content_type="application/json",
    )
    assert bad.status_code == 400
    assert "Not a domain name: bad_domain." in bad.json()["domains"]
    assert not Partner.objects.filter(slug="initech").exists()

    created = staff_client.post(
        "/api/v1/partners/new/",
        {"name": "Initech", "slug": "initech", "domains": ["initech.example"]},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "onboarding" and created.json()["domains"] == ["initech.example"]
    assert Partner.objects.get(slug="initech").sponsor == staff

    again = staff_client.post(
        "/api/v1/partners/new/",
        {"name": "Other", "slug": "initech", "domains": ["other.example"]},
        content_type="application/json",
    )
    assert again.status_code == 400 and "exists already" in again.json()["slug"][0]


def test_oidc_idp_is_validated_against_its_discovery_document(staff_client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    staff_client.post(
        "/api/v1/partners/new/",
        {"name": "Initech", "slug": "initech", "domains": ["initech.example"]},
        content_type="application/json",
    )
    with OidcIdp(
        [
            {
                "client_id": "porte",
                "client_secret": "s3cret-value",
                "redirect_uris": ["http://127.0.0.1:8000/accounts/oidc/initech/login/callback/"],
            }
        ],
        [],
    ) as idp:
        wrong_issuer = staff_client.post(
            "/api/v1/partners/initech/idp/",
            {
                "protocol": "oidc",
                "display_name": "Initech",
                "issuer": idp.issuer + "/tenant",
                "client_id": "porte",
                "client_secret": "s3cret-value",
            },
            content_type="application/json",
        )
        assert wrong_issuer.status_code == 400
        assert not IdentityProvider.objects.filter(partner__slug="initech").exists()

        created = staff_client.post(
            "/api/v1/partners/initech/idp/",
            {
                "protocol": "oidc",
                "display_name": "Initech",
                "issuer": idp.issuer,
                "client_id": "porte",
                "client_secret": "s3cret-value",
            },
            content_type="application/json",
        )
    assert created.status_code == 201, created.content
    body = created.json()
    assert "client_secret" not in body and "s3cret-value" not in created.content.decode()
    assert (
        body["registration"]["Redirect URI"] == f"{settings.PUBLIC_URL}/accounts/oidc/initech/login/callback/"
    )
    stored = IdentityProvider.objects.get(partner__slug="initech")
    assert stored.client_secret_encrypted and "s3cret-value" not in stored.client_secret_encrypted


def test_saml_metadata_with_a_doctype_is_refused(staff_client: Client) -> None:
    staff_client.post(
        "/api/v1/partners/new/",
        {"name": "Initech", "slug": "initech", "domains": ["initech.example"]},
        content_type="application/json",
    )
    hostile = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="&lol2;"/>'
    )
    refused = staff_client.post(
        "/api/v1/partners/initech/idp/",
        {"protocol": "saml", "display_name": "Initech", "metadata_xml": hostile},
        content_type="application/json",
    )
    assert refused.status_code == 400
    assert "DOCTYPE" in refused.json()["detail"]
    assert not IdentityProvider.objects.filter(partner__slug="initech").exists()


def test_unknown_partner_answers_404(staff_client: Client) -> None:
    response = staff_client.post(
        "/api/v1/partners/nobody/idp/",
        {"protocol": "oidc", "display_name": "x"},
        content_type="application/json",
    )
    assert response.status_code == 404


def test_partner_admin_is_not_staff(acme) -> None:  # type: ignore[no-untyped-def]
    admin = make_member(acme.partner, "pam", partner_admin=True)
    client = Client()
    sign_in_as(client, admin)
    assert client.get("/api/v1/partners/").status_code == 403
