from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests


def wait_for(
    predicate: Callable[[], Any],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str | Callable[[], str] = "condition",
) -> Any:
    """Poll until `predicate()` is truthy; fail the test with `what` if it never is. `what` may be a callable,
    evaluated only on failure (e.g. to include a worker's log as it is at the timeout, not at the start)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what() if callable(what) else what}"
            )
        time.sleep(interval)


def csrf_headers(http: requests.Session) -> dict[str, str]:
    return {"X-CSRFToken": http.cookies.get("csrftoken", "")}


def begin_oidc_sign_in(http: requests.Session, base_url: str, provider_id: str) -> requests.Response:
    """GET allauth's confirmation page (sets the CSRF cookie), then POST it: returns the redirect to the IdP."""
    login_url = f"{base_url}/accounts/oidc/{provider_id}/login/"
    http.get(login_url).raise_for_status()
    return http.post(
        login_url, data={"csrfmiddlewaretoken": http.cookies["csrftoken"]}, allow_redirects=False
    )


def role_inline_policy(account_id: str, role_name: str, policy_name: str) -> dict[str, Any] | None:
    """An inline policy of a role in a partner account, as moto holds it (None if the role has no such policy)."""
    import json

    from portal import aws

    iam = aws.partner(account_id).iam
    try:
        document = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
    except aws.AwsNotFound:
        return None
    return json.loads(document) if isinstance(document, str) else dict(document)


def denied_identities(document: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(source identity, token-issue cutoff) for every person a revocation document denies, one per mention."""
    found: list[tuple[str, str]] = []
    for statement in (document or {}).get("Statement", []):
        identities = statement["Condition"]["StringEquals"]["aws:SourceIdentity"]
        cutoff = statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
        for identity in [identities] if isinstance(identities, str) else identities:
            found.append((identity, cutoff))
    return found


def purge_broker() -> None:
    """Drop queued Celery messages (e.g. activations queued on commit by a test that runs no worker), so a
    worker started later does not act on rows that no longer exist."""
    from portal.celery import app

    app.control.purge()


def begin_saml_sign_in(http: requests.Session, base_url: str, slug: str) -> requests.Response:
    """GET allauth's SAML confirmation page (sets the CSRF cookie), then POST it: returns the redirect to the IdP
    (an AuthnRequest with the HTTP-Redirect binding)."""
    login_url = f"{base_url}/accounts/saml/{slug}/login/"
    http.get(login_url).raise_for_status()
    return http.post(
        login_url, data={"csrfmiddlewaretoken": http.cookies["csrftoken"]}, allow_redirects=False
    )


def session_user_id(http: requests.Session) -> str | None:
    """Who Porte's session cookie in this `requests` browser belongs to (None: not signed in)."""
    from django.contrib.sessions.models import Session

    key = http.cookies.get("sessionid")
    session = Session.objects.filter(session_key=key).first() if key else None
    return session.get_decoded().get("_auth_user_id") if session else None


def signed_in_sessions() -> int:
    """How many stored sessions belong to a signed-in user."""
    from django.contrib.sessions.models import Session

    return sum(1 for s in Session.objects.all() if s.get_decoded().get("_auth_user_id"))


def refusals() -> list[dict[str, Any]]:
    """Every recorded refused sign-in: partner id plus the event's data (provider_id, reason, subject)."""
    from portal.models import AuditEvent

    return [
        {"partner_id": e.partner_id, **e.data}
        for e in AuditEvent.objects.filter(action="signin.refused").order_by("pk")
    ]


def fresh_totp_code(secret: str) -> str:
    """The current TOTP code, taken early enough in its 30-second window to still be valid when the server checks
    it (allauth accepts the current window only): near the end of a window, wait for the next one."""
    from tests.fixtures.domain import totp_code

    left = 30 - time.time() % 30
    if left < 5:
        time.sleep(left + 0.1)
    return totp_code(secret)


def staff_sign_in(base_url: str, username: str, password: str, totp_secret: str) -> requests.Session:
    """A real staff sign-in in a `requests` browser: allauth's login form, then its two-factor (TOTP) stage."""
    http = requests.Session()
    http.get(f"{base_url}/accounts/login/").raise_for_status()
    to_mfa = http.post(
        f"{base_url}/accounts/login/",
        data={"login": username, "password": password, "csrfmiddlewaretoken": http.cookies["csrftoken"]},
        allow_redirects=False,
    )
    assert to_mfa.status_code == 302 and to_mfa.headers["Location"] == "/accounts/2fa/authenticate/", (
        to_mfa.text
    )
    signed_in = http.post(
        f"{base_url}/accounts/2fa/authenticate/",
        data={"code": fresh_totp_code(totp_secret), "csrfmiddlewaretoken": http.cookies["csrftoken"]},
        allow_redirects=False,
    )
    assert signed_in.status_code == 302, signed_in.text
    return http


def assert_audit_chain_whole() -> None:
    """Every committed audit event sealed into the chain (a worker may be sealing too), and the chain intact."""
    from portal.audit import seal, unsealed, verify_chain

    def sealed_all() -> bool:
        seal()
        return unsealed().events == 0

    wait_for(sealed_all, timeout=30, what="the audit chain's tail to be sealed")
    assert verify_chain() is None


def run_together(*calls: Callable[[], Any], timeout: float = 60) -> list[Any]:
    """Run each call in its own thread (own database connection), released together by a barrier; return each
    call's result, or the exception it raised."""
    import threading

    from django.db import connection

    barrier = threading.Barrier(len(calls))
    outcomes: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes[i] = calls[i]()
        except BaseException as exc:  # handed to the caller
            outcomes[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
        assert not thread.is_alive(), f"a concurrent call did not finish within {timeout:g} s (deadlock?)"
    return outcomes


def locked_elsewhere(table: str, ids: list[int]) -> bool:
    """Whether any of these rows is locked by another transaction, asked from a fresh connection (NOWAIT)."""
    from django.db import OperationalError, connection, transaction

    def probe() -> bool:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"SELECT id FROM {table} WHERE id = ANY(%s) FOR UPDATE NOWAIT", [ids])
                return False
        except OperationalError:
            return True

    [outcome] = run_together(probe)
    if isinstance(outcome, BaseException):
        raise outcome
    return bool(outcome)


def require_postgresql(what: str) -> None:
    """Fail loudly (never pass vacuously) when a test about PostgreSQL's locks runs on another database."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.fail(f"{what} needs PostgreSQL (run it with tests/run.py)")


def self_signed_certificate_b64(common_name: str, not_before: Any, not_after: Any) -> str:
    """A self-signed certificate, base64 DER as SAML metadata carries it."""
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def porte_apps() -> list[str]:
    """Porte's own apps (those of INSTALLED_APPS that live in this repository), bottom of the rule first."""
    from pathlib import Path

    from django.conf import settings

    root = Path(__file__).resolve().parents[1]
    return [app for app in settings.INSTALLED_APPS if (root / app / "apps.py").exists()]


# What the pages' CSP refuses in served HTML: a script element without a src, a style attribute.
INLINE_SCRIPT_OR_STYLE = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|\sstyle=")


def cached_issuer_key(issuer: str, kid: str) -> Any:
    """A new EC signing key for `issuer`, put where Porte keeps an OIDC issuer's discovery document and JWKS (its
    cache, partners/idp_metadata.py): for tokens no real IdP would sign. Returns the private key."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from django.core.cache import cache
    from jwt.algorithms import ECAlgorithm

    from partners import idp_metadata

    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig", "alg": "ES256"}
    jwks_uri = f"{issuer}/jwks"
    discovery = {"issuer": issuer, "jwks_uri": jwks_uri}
    cache.set(idp_metadata._key("discovery", idp_metadata.discovery_url(issuer)), discovery)
    cache.set(idp_metadata._key("jwks", jwks_uri), {"keys": [jwk]})
    return key
