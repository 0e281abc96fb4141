"""A partner's pipeline exchanges its CI's OIDC token for short STS credentials on one role.

The CI is oidc-provider issuing ID tokens with GitHub Actions' claims (repository, ref, environment, a
`repo:…` subject); STS is moto's. Hostile tokens: the wrong repository, the wrong audience, a replay, another
partner's issuer (all from real IdPs); then what a real IdP will not sign (expired, too long-lived, `alg: none`,
a token id that is not a string), signed with a key the test puts where Porte keeps an issuer's keys (its
cache). Every refusal is the same 401 to the caller and names its check in the audit."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import boto3
import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client

from grants.models import CredentialIssue, Grant
from portal.models import AuditEvent, User
from tests.fixtures.domain import World, make_member, make_staff, sign_in_as
from tests.fixtures.peers import running_idp
from tests.helpers import cached_issuer_key
from tests.peers.oidc_idp import OidcIdp, OidcUser, sign_in
from workloads.models import Workload

pytestmark = [pytest.mark.idp, pytest.mark.aws, pytest.mark.django_db]

CALLBACK = "http://127.0.0.1:9/ci-callback"  # never followed: the test takes the code from the redirect
GITHUB = {
    "repository": "acme/infra",
    "repository_owner": "acme",
    "ref": "refs/heads/main",
    "environment": "prod",
    "workflow": "deploy",
}


def _ci_user(username: str, **claims: str) -> OidcUser:
    merged = {**GITHUB, **claims}
    return OidcUser(
        username=username,
        password=f"{username}-pw",
        sub=f"repo:{merged['repository']}:environment:{merged['environment']}",
        email=f"{username}@ci.example",
        name=username,
        groups=[],
        amr=["pwd"],
        acr="",
        claims=merged,
    )


def _client(client_id: str) -> dict[str, Any]:
    return {"client_id": client_id, "client_secret": f"{client_id}-secret", "redirect_uris": [CALLBACK]}


@pytest.fixture
def ci() -> Iterator[OidcIdp]:
    """Acme's CI as an OIDC issuer: its deploy job, a job of another repository, and another relying party."""
    idp = running_idp(
        [_client("porte-ci"), _client("other-app")],
        [_ci_user("deploy"), _ci_user("other-repo", repository="acme/other")],
        title="Acme CI",
    )
    yield idp
    idp.stop()


def ci_token(idp: OidcIdp, username: str, client_id: str = "porte-ci") -> str:
    """An ID token as the CI hands it to a job: the code flow with PKCE, the code exchanged at the token endpoint."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    discovery = requests.get(idp.discovery_url, timeout=10).json()
    query = urlencode(
        {
            "client_id": client_id,
            "response_type": "code",
            "scope": "openid",
            "redirect_uri": CALLBACK,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": secrets.token_urlsafe(8),
            "nonce": secrets.token_urlsafe(8),
        }
    )
    redirect = sign_in(
        requests.Session(),
        f"{discovery['authorization_endpoint']}?{query}",
        username,
        f"{username}-pw",
        follow_callback=False,
    )
    code = parse_qs(urlsplit(redirect.headers["Location"]).query)["code"][0]
    answer = requests.post(
        discovery["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": verifier,
        },
        auth=(client_id, f"{client_id}-secret"),
        timeout=10,
    )
    answer.raise_for_status()
    return str(answer.json()["id_token"])


def _api(user: User) -> Client:
    return sign_in_as(Client(), user)


def _registered(world: World, issuer: str, **overrides: Any) -> Workload:
    """Registered by the partner's admin over the API, approved by staff over the API."""
    admin = make_member(world.partner, f"admin-{uuid.uuid4().hex[:6]}", partner_admin=True)
    body = {
        "name": "deploy",
        "role": world.role.slug,
        "issuer": issuer,
        "audience": "porte-ci",
        "claims": {"repository": "acme/infra", "environment": "prod"},
        "span_minutes": 15,
        **overrides,
    }
    created = _api(admin).post("/api/v1/workloads/", body, content_type="application/json")
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "pending"
    approved = _api(make_staff(f"sam-{uuid.uuid4().hex[:6]}")).post(
        f"/api/v1/workloads/{created.json()['id']}/approve/"
    )
    assert approved.status_code == 200, approved.content
    return Workload.objects.get(pk=created.json()["id"])


def _exchange(reference: str, token: str) -> Any:
    return Client().post(
        "/api/v1/workloads/exchange/",
        {"workload": reference, "token": token},
        content_type="application/json",
    )


def _last_refusal() -> str:
    event = AuditEvent.objects.filter(action="workload.exchange_refused").order_by("-pk").first()
    assert event is not None
    return str(event.data["check"])


def test_a_pipeline_gets_short_attributable_credentials_on_its_one_role(
    acme: World, ci: OidcIdp, local_aws: str
) -> None:
    workload = _registered(acme, ci.issuer)
    answer = _exchange("acme/deploy", ci_token(ci, "deploy"))
    assert answer.status_code == 200, answer.content
    assert answer["Cache-Control"] == "no-store"
    creds = answer.json()
    caller = boto3.client(
        "sts",
        endpoint_url=local_aws,
        region_name="eu-west-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    ).get_caller_identity()
    grant = Grant.objects.get(user=workload.user)
    assert caller["Arn"].endswith(
        f"assumed-role/porte-readonly/porte-g{grant.pk}-{workload.user.public_id.hex[:8]}"
    )
    assert grant.status == Grant.Status.ACTIVE and grant.role == acme.role
    assert 14 * 60 <= (grant.ends_at - grant.starts_at).total_seconds() <= 15 * 60
    issue = CredentialIssue.objects.get(grant=grant)
    assert issue.kind == "workload" and issue.access_key_id == creds["AccessKeyId"]
    exchanged = AuditEvent.objects.get(action="workload.exchanged")
    assert exchanged.data["subject"] == "repo:acme/infra:environment:prod"
    assert exchanged.data["access_key_id"] == creds["AccessKeyId"]

    # Another run of the pipeline, a new token: the same grant, new credentials.
    again = _exchange("acme/deploy", ci_token(ci, "deploy"))
    assert again.status_code == 200 and again.json()["AccessKeyId"] != creds["AccessKeyId"]
    assert Grant.objects.filter(user=workload.user).count() == 1
    assert not AuditEvent.objects.filter(action="workload.exchange_refused").exists()


def test_real_tokens_that_must_not_work_are_refused(
    acme: World, globex: World, ci: OidcIdp, local_aws: str
) -> None:
    _registered(acme, ci.issuer)
    token = ci_token(ci, "deploy")
    assert _exchange("acme/deploy", token).status_code == 200
    refused = {
        "replayed": _exchange("acme/deploy", token),
        "claim:repository": _exchange("acme/deploy", ci_token(ci, "other-repo")),
        "aud": _exchange("acme/deploy", ci_token(ci, "deploy", client_id="other-app")),
        "workload": _exchange("acme/nope", ci_token(ci, "deploy")),
    }
    for check, answer in refused.items():
        assert answer.status_code == 401, (check, answer.content)
        assert answer.json() == {
            "detail": "The token was refused for this pipeline. Ask the partner's Porte administrator."
        }
        event = AuditEvent.objects.filter(action="workload.exchange_refused", data__check=check)
        assert event.exists(), check

    # Another partner's CI (its own issuer) with the same repository claims: not acme's pipeline.
    other_ci = running_idp([_client("porte-ci")], [_ci_user("deploy")], title="Globex CI")
    try:
        assert _exchange("acme/deploy", ci_token(other_ci, "deploy")).status_code == 401
        assert _last_refusal() == "iss"
    finally:
        other_ci.stop()
    assert CredentialIssue.objects.count() == 1


# --- what a real CI will not sign --------------------------------------------------------------------------------

FAKE_ISSUER = "http://127.0.0.1:1/ci"
KID = "ci-key-1"


@pytest.fixture
def key() -> Any:
    return cached_issuer_key(FAKE_ISSUER, KID)


def _forged(key: Any, *, drop: tuple[str, ...] = (), algorithm: str = "ES256", **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": FAKE_ISSUER,
        "aud": "porte-ci",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "sub": "repo:acme/infra:environment:prod",
        **GITHUB,
        **claims,
    }
    for name in drop:
        body.pop(name)
    if algorithm == "none":
        return jwt.encode(body, None, algorithm="none", headers={"kid": KID})
    return jwt.encode(body, key, algorithm=algorithm, headers={"kid": KID})


def test_tokens_no_ci_would_sign_are_refused(acme: World, key: Any, local_aws: str) -> None:
    _registered(acme, FAKE_ISSUER)
    now = int(time.time())
    cases = {
        "exp": _forged(key, iat=now - 900, exp=now - 600),
        "iat": _forged(key, exp=now + 7200),
        "jti": _forged(key, jti=12345),
        "algorithm": _forged(key, algorithm="none"),
        "signature": _forged(ec.generate_private_key(ec.SECP256R1())),
        "claim:environment": _forged(key, environment="staging"),
        "aud": _forged(key, aud=["porte-ci", "someone-else"]),
        "malformed": "eyJ.not.a-token",
    }
    for check, token in cases.items():
        assert _exchange("acme/deploy", token).status_code == 401, check
        assert _last_refusal() == check
    assert _exchange("acme/deploy", _forged(key)).status_code == 200
    assert not CredentialIssue.objects.exclude(kind="workload").exists()


def test_registration_refuses_wildcards_and_a_partner_sees_only_its_own(acme: World, globex: World) -> None:
    admin = make_member(acme.partner, "acme-admin", partner_admin=True)
    body = {
        "name": "deploy",
        "role": "readonly",
        "issuer": FAKE_ISSUER,
        "audience": "porte-ci",
        "span_minutes": 15,
    }
    for claims, field in (({"repository": "acme/*"}, "claims"), ({}, "claims"), ({"aud": "x"}, "claims")):
        answer = _api(admin).post(
            "/api/v1/workloads/", {**body, "claims": claims}, content_type="application/json"
        )
        assert answer.status_code == 400 and field in answer.json(), answer.content
    too_long = _api(admin).post(
        "/api/v1/workloads/",
        {**body, "claims": {"repository": "acme/infra"}, "span_minutes": 120},
        content_type="application/json",
    )
    assert too_long.status_code == 400
    member = make_member(acme.partner, "acme-member")
    assert (
        _api(member)
        .post(
            "/api/v1/workloads/", {**body, "claims": {"repository": "a/b"}}, content_type="application/json"
        )
        .status_code
        == 400
    )

    workload = _registered(acme, FAKE_ISSUER)
    other_admin = make_member(globex.partner, "globex-admin", partner_admin=True)
    assert _api(other_admin).get("/api/v1/workloads/").json() == []
    assert _api(other_admin).post(f"/api/v1/workloads/{workload.pk}/disable/").status_code == 404
    assert _api(other_admin).post(f"/api/v1/workloads/{workload.pk}/approve/").status_code in (403, 404)


def test_staff_cannot_approve_what_they_registered_and_disabling_revokes(
    acme: World, key: Any, local_aws: str
) -> None:
    staff = make_staff("sam")
    body = {
        "partner": "acme",
        "name": "nightly",
        "role": "readonly",
        "issuer": FAKE_ISSUER,
        "audience": "porte-ci",
        "claims": {"repository": "acme/infra"},
    }
    created = _api(staff).post("/api/v1/workloads/", body, content_type="application/json")
    assert created.status_code == 201, created.content
    assert _api(staff).post(f"/api/v1/workloads/{created.json()['id']}/approve/").status_code == 400
    assert _exchange("acme/nightly", _forged(key)).status_code == 401  # not approved yet
    assert (
        _api(make_staff("carol")).post(f"/api/v1/workloads/{created.json()['id']}/approve/").status_code
        == 200
    )
    assert _exchange("acme/nightly", _forged(key)).status_code == 200
    workload = Workload.objects.get(pk=created.json()["id"])
    grant = Grant.objects.get(user=workload.user)

    assert _api(staff).post(f"/api/v1/workloads/{workload.pk}/disable/").status_code == 200
    grant.refresh_from_db()
    assert grant.status == Grant.Status.REVOKING and grant.deny_cutoff is not None
    assert _exchange("acme/nightly", _forged(key)).status_code == 401
    assert _last_refusal() == "workload"


def test_an_access_review_covers_a_pipeline_like_a_person(acme: World, key: Any, local_aws: str) -> None:
    from reviews import services as reviews

    workload = _registered(acme, FAKE_ISSUER)
    assert _exchange("acme/deploy", _forged(key)).status_code == 200
    campaign = reviews.review_campaign_start(partner=acme.partner)
    item = campaign.items.get(subject=workload.user, kind="membership")
    assert item.label == "Pipeline deploy may use Acme Corp's Porte access"
    assert item.last_sign_in_at is not None  # its last exchange
    reviews.review_item_decide(
        item=item, decision="revoke", comment="Pipeline retired", actor=make_staff("rita")
    )
    assert Grant.objects.get(user=workload.user).status == Grant.Status.REVOKING
    assert _exchange("acme/deploy", _forged(key)).status_code == 401
    assert _last_refusal() == "standing"


def test_the_partner_page_lists_pipelines_and_staff_approve_and_disable_there(acme: World) -> None:
    admin = make_member(acme.partner, "acme-admin", partner_admin=True)
    body = {
        "name": "deploy",
        "role": "readonly",
        "issuer": FAKE_ISSUER,
        "audience": "porte-ci",
        "claims": {"repository": "acme/infra"},
    }
    created = _api(admin).post("/api/v1/workloads/", body, content_type="application/json").json()
    browser = _api(make_staff("sam"))
    page = browser.get("/staff/partners/acme/").content.decode()
    assert (
        "acme/deploy" in page
        and "Waiting for staff approval" in page
        and "repository = <code>acme/infra" in page
    )
    browser.post(f"/staff/workloads/{created['id']}/approve/")
    assert Workload.objects.get(pk=created["id"]).status == Workload.Status.ACTIVE
    browser.post(f"/staff/workloads/{created['id']}/disable/")
    assert Workload.objects.get(pk=created["id"]).status == Workload.Status.DISABLED
    assert AuditEvent.objects.filter(action="workload.disabled", actor__username="sam").exists()


def test_a_pipeline_identity_never_holds_a_session(acme: World) -> None:
    workload = _registered(acme, FAKE_ISSUER)
    browser = Client()
    browser.force_login(workload.user)  # however it came by one: the gate ends it at the first request
    assert browser.get("/").status_code == 302
    assert "_auth_user_id" not in browser.session
    assert AuditEvent.objects.get(action="session.ended").data["reason"] == "not_signed_in_by_idp"


def test_what_a_pipeline_does_shows_in_activity_as_the_pipeline(
    acme: World, key: Any, local_aws: str
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from activity import services as activity
    from activity import trail
    from activity.models import ActivityEvent
    from activity.simulator import CloudTrailSimulator

    workload = _registered(acme, FAKE_ISSUER)
    assert _exchange("acme/deploy", _forged(key)).status_code == 200
    issue = CredentialIssue.objects.get(grant__user=workload.user)
    org_id = trail.organization_id()
    assert org_id is not None
    simulator = CloudTrailSimulator(org_id=org_id)
    simulator.ensure_bucket()
    records = simulator.session_records(issue, reads=2, writes=1, denied=0)
    simulator.write_log(acme.partner.aws_account_id, records, at=timezone.now() + timedelta(minutes=1))
    assert activity.activity_ingest().events_inserted == len(records)
    events = ActivityEvent.objects.filter(event_id__in=[r["eventID"] for r in records])
    assert {(e.user_id, e.grant_id) for e in events} == {(workload.user_id, issue.grant_id)}
    # The partner's admin sees it, named as the pipeline.
    admin = make_member(acme.partner, "acme-admin", partner_admin=True)
    page = _api(admin).get("/activity/").content.decode()
    assert "Pipeline deploy" in page


def test_a_partner_admin_registers_and_disables_pipelines_on_their_page(acme: World, globex: World) -> None:
    admin = _api(make_member(acme.partner, "acme-admin", partner_admin=True))
    form = {
        "name": "deploy",
        "role": acme.role.pk,
        "issuer": FAKE_ISSUER,
        "audience": "porte-ci",
        "claims": "repository=acme/infra\nenvironment=prod",
        "span_minutes": 15,
    }
    wildcard = admin.post("/partner/pipelines/", {**form, "claims": "repository=acme/*"})
    assert wildcard.status_code == 400 and "no wildcards" in wildcard.content.decode()
    # Another partner's role is not offered, and not taken.
    assert admin.post("/partner/pipelines/", {**form, "role": globex.role.pk}).status_code == 400
    assert admin.post("/partner/pipelines/", form).status_code == 302
    workload = Workload.objects.get(partner=acme.partner, name="deploy")
    assert workload.claims == {"repository": "acme/infra", "environment": "prod"}
    assert workload.status == Workload.Status.PENDING
    page = admin.get("/partner/pipelines/").content.decode()
    assert "acme/deploy" in page and "Waiting for staff approval" in page
    other = _api(make_member(globex.partner, "globex-admin", partner_admin=True))
    assert other.post(f"/partner/pipelines/{workload.pk}/disable/").status_code == 404
    assert admin.post(f"/partner/pipelines/{workload.pk}/disable/").status_code == 302
    assert Workload.objects.get(pk=workload.pk).status == Workload.Status.DISABLED
