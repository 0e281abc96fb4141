"""Faults around expiry and console sign-in, with real Celery worker processes, real Redis and moto.

- a worker SIGKILLed in the middle of an expiry: after a restart every grant ends, denied exactly once;
- the broker's Redis database flushed while grants are active: they still end on time (the sweeper works from
  the database, and beat publishes a fresh sweep every tick);
- the same task delivered twice (to two workers): one deny per person, one audit event per grant;
- console federation: the request Porte sends to the AWS federation endpoint and the login URL it builds.

As in test_expiry_concurrency.py, grants are created through the real request service and activated through
the real activation service (what a worker runs); making them due is done by moving `ends_at` with a queryset
update, which simulates time passing for the worker processes (they read ends_at from the database).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import redis
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.utils import timezone

from approvals.services import request_create
from grants import policies, provisioning, tasks
from grants.federation import ConsoleUnavailable, console_sign_in_url
from grants.models import CredentialIssue, Grant, Role
from grants.services import activation, expiry, minting, revocation, role_setup
from portal import aws
from portal.models import AuditEvent
from tests.fixtures.domain import READ_ONLY, World, make_member, sign_in_as
from tests.fixtures.peers import WorkerProcess
from tests.helpers import (
    assert_audit_chain_whole,
    denied_identities,
    purge_broker,
    role_inline_policy,
    run_together,
    wait_for,
)
from tests.peers.aws_proxy import AwsCall, AwsProxy
from tests.peers.oidc_idp import free_port

pytestmark = pytest.mark.django_db(transaction=True)

USERS = 4


@pytest.fixture(autouse=True)
def _require_postgresql() -> None:
    # The claim (SKIP LOCKED) and the role row lock a killed worker leaves behind are PostgreSQL's.
    if connection.vendor != "postgresql":
        pytest.fail("tests/grants/test_faults.py needs PostgreSQL (run it with tests/run.py)")


@pytest.fixture(autouse=True)
def _no_stray_activations() -> Iterator[None]:
    # Requests queue their activation on commit; the tests activate in-process, so drop those messages.
    yield
    purge_broker()


# --- helpers --------------------------------------------------------------------------------------------------


def _second_role(acme: World) -> Role:
    role = role_setup.role_create(
        partner=acme.partner,
        slug="operator",
        name="Operator",
        inline_policy=READ_ONLY,
        permissions_boundary_arn=acme.role.permissions_boundary_arn,
        max_duration=timedelta(hours=1),
        eligible_groups=["engineers"],
    )
    return provisioning.role_provision(role=role)


def _active_grants(
    acme: World, roles: list[Role], *, users: int = USERS, prefix: str = "engineer"
) -> list[int]:
    """`users` Acme engineers, each holding an active grant on every role (requested and activated for real)."""
    ids = []
    for i in range(users):
        user = make_member(acme.partner, f"{prefix}{i:02d}")
        for role in roles:
            request = request_create(
                requester=user, role=role, justification="Nightly batch check", duration=timedelta(minutes=30)
            )
            grant = activation.grant_activate(grant_id=request.grant.pk)
            assert grant.status == Grant.Status.ACTIVE
            ids.append(grant.pk)
    return ids


def _make_due(ids: list[int], *, ends_in: timedelta = timedelta(seconds=-1)) -> None:
    """Time passes: the grants end at now + `ends_in` (in the past by default)."""
    now = timezone.now()
    Grant.objects.filter(pk__in=ids).update(starts_at=now - timedelta(minutes=30), ends_at=now + ends_in)


def _expired_events(ids: list[int]) -> Counter[str]:
    return Counter(
        AuditEvent.objects.filter(
            action="grant.expired", object_type="grants.grant", object_id__in=[str(g) for g in ids]
        ).values_list("object_id", flat=True)
    )


def _assert_each_holder_denied_once(acme: World, ids: list[int]) -> None:
    """Each role's porte-revocations policy names each holder exactly once, with their grant's cutoff."""
    grants = list(Grant.objects.filter(pk__in=ids).select_related("user", "role"))
    for role in {g.role for g in grants}:
        document = role_inline_policy(
            acme.partner.aws_account_id, role.iam_name, policies.REVOCATIONS_POLICY_NAME
        )
        denied = denied_identities(document)
        on_role = [g for g in grants if g.role == role]
        assert Counter(identity for identity, _ in denied) == Counter(g.user.source_identity for g in on_role)
        assert dict(denied) == {g.user.source_identity: policies.iso(g.deny_cutoff) for g in on_role}


def _statuses(ids: list[int]) -> set[str]:
    return set(Grant.objects.filter(pk__in=ids).values_list("status", flat=True))


def _all_expired(ids: list[int]) -> bool:
    return _statuses(ids) == {Grant.Status.EXPIRED}


# --- a. worker killed mid-expiry ------------------------------------------------------------------------------


def _holds_revocation_put(call: AwsCall) -> bool:
    return call.action == "PutRolePolicy" and call.policy_name == policies.REVOCATIONS_POLICY_NAME


def test_worker_killed_mid_expiry_is_finished_after_restart_exactly_once(
    acme, worker_env, tmp_path, local_aws
):
    """The first worker (embedded beat, sweep every 0.5 s) reaches AWS through a loopback proxy that forwards
    every call to moto except `PutRolePolicy(porte-revocations)`, which it reads and then holds: never forwarded,
    never answered. So the sweeper has necessarily claimed the grants (its claim transaction committed before
    any AWS call) and is blocked inside the IAM call, holding the role's IAM lease (a committed claim, no row lock
    and no open transaction), when the proxy reports the held request; only then is the worker's process group
    (worker + beat child) SIGKILLed. The kill point is therefore fixed by the proxy, not by timing: after the
    claim, before AWS has the deny.

    A second worker, straight to moto, finishes the waiting grants from the database once the dead writer's lease
    (2 s here) has run out (the killed task's message is not redelivered: Redis keeps an unacked message for its
    visibility timeout)."""
    roles = [acme.role, _second_role(acme)]
    ids = _active_grants(acme, roles)
    purge_broker()
    _make_due(ids)
    events_before = AuditEvent.objects.count()

    with AwsProxy(local_aws, hold=_holds_revocation_put) as proxy:
        first = WorkerProcess(
            {**worker_env, "AWS_ENDPOINT_URL": proxy.url, "PORTE_IAM_LEASE_SECONDS": "2"},
            tmp_path / "killed.log",
            beat=True,
        ).start()
        try:
            assert proxy.held_event.wait(30), f"the sweeper never reached PutRolePolicy\n{first.output()}"
            first.kill()
        finally:
            first.stop()
        held = proxy.held
    assert len(held) == 1 and held[0].role_name in {r.iam_name for r in roles}
    assert first.proc is not None and first.proc.returncode == -9

    # Killed after the claim and before the deny: every grant is claimed, none is ended or audited as ended,
    # and no deny reached AWS.
    claimed = {g.pk: g for g in Grant.objects.filter(pk__in=ids)}
    assert {g.status for g in claimed.values()} == {Grant.Status.EXPIRING}
    assert all(g.claimed_at and g.deny_cutoff and g.ended_at is None for g in claimed.values())
    assert not AuditEvent.objects.filter(action="grant.expired").exists()
    assert AuditEvent.objects.count() == events_before
    for role in roles:
        assert (
            role_inline_policy(acme.partner.aws_account_id, role.iam_name, policies.REVOCATIONS_POLICY_NAME)
            is None
        )

    second = WorkerProcess(
        {**worker_env, "AWS_ENDPOINT_URL": local_aws},
        tmp_path / "restarted.log",
        beat=True,
    ).start()
    try:
        wait_for(
            lambda: _all_expired(ids),
            timeout=30,
            what=lambda: f"the restarted worker to end the stale claims\n{second.output()}",
        )
        # A few more sweeps run meanwhile and must add nothing.
        time.sleep(2)
    finally:
        second.stop()

    final = {g.pk: g for g in Grant.objects.filter(pk__in=ids)}
    assert all(g.failure_reason == "" and g.ended_at for g in final.values())
    # The cutoff taken at the claim (before the kill) is the one kept.
    assert {pk: g.deny_cutoff for pk, g in final.items()} == {pk: g.deny_cutoff for pk, g in claimed.items()}
    assert _expired_events(ids) == Counter({str(g): 1 for g in ids})
    _assert_each_holder_denied_once(acme, ids)
    assert_audit_chain_whole()


# --- b. broker flushed ----------------------------------------------------------------------------------------


def test_grants_expire_on_time_after_the_broker_is_flushed(acme, celery_worker_process):
    """FLUSHDB on the broker's Redis database while grants are active drops every queued and unacked message
    and kombu's bindings. The grants still end within a few seconds of ends_at: the sweeper reads due grants
    from the database and beat publishes a new sweep every tick. The bound (15 s) is generous on purpose: it
    proves they ended with no message surviving the flush, not how fast."""
    roles = [acme.role, _second_role(acme)]
    ids = _active_grants(acme, roles)
    _make_due(ids, ends_in=timedelta(seconds=4))
    ends_at = dict(Grant.objects.filter(pk__in=ids).values_list("pk", "ends_at"))

    broker = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    try:
        # Let beat publish and the worker consume a few sweeps first, so there is broker state to lose.
        time.sleep(1)
        keys_before = sorted(k.decode() for k in broker.keys("*"))
        assert broker.flushdb()
    finally:
        broker.close()
    # kombu's bindings (and whatever was queued or unacked) were there, and are gone.
    assert any(k.startswith("_kombu.binding.") for k in keys_before), keys_before
    assert _statuses(ids) == {Grant.Status.ACTIVE}
    assert timezone.now() < min(ends_at.values())

    wait_for(
        lambda: _all_expired(ids),
        timeout=30,
        what=lambda: f"the sweeper to end the grants after the flush\n{celery_worker_process.output()}",
    )
    ended = dict(Grant.objects.filter(pk__in=ids).values_list("pk", "ended_at"))
    lags = {pk: (ended[pk] - ends_at[pk]).total_seconds() for pk in ids}
    assert all(0 <= lag <= 15 for lag in lags.values()), lags
    assert _expired_events(ids) == Counter({str(g): 1 for g in ids})
    _assert_each_holder_denied_once(acme, ids)
    assert_audit_chain_whole()


# --- c. duplicate delivery ------------------------------------------------------------------------------------

_SUCCEEDED = re.compile(r"Task (grants\.tasks\.\w+)\[([^\]]+)\] succeeded in [0-9.e-]+s: (\d+)")


def _succeeded(workers: list[WorkerProcess]) -> list[tuple[str, str, int]]:
    found = []
    for worker in workers:
        text = worker.log_path.read_text(errors="replace")
        found += [(name, task_id, int(n)) for name, task_id, n in _SUCCEEDED.findall(text)]
    return found


def _succeeded_of(workers: list[WorkerProcess], task_ids: list[str]) -> list[tuple[str, str, int]]:
    return [run for run in _succeeded(workers) if run[1] in task_ids]


def test_duplicate_deliveries_to_two_workers_deny_once_and_audit_once(
    acme, worker_env, tmp_path, local_aws, settings
):
    """`expiry_sweep` and `role_finish_endings` (per role) are each delivered twice, with the same task id as a
    broker redelivery has, to two worker processes consuming the same queue (no beat: these messages are the
    only ones). Half of the due grants were already claimed by a sweep that could not reach AWS (its backoff
    over), the other half are due and unclaimed; sweeps and role_finish_endings on the same role overlap and
    contend for the role's IAM lease (the loser retries a second later). Whatever order and overlap the six
    deliveries run in, each grant ends once, with one audit event, and each person is named once."""
    roles = [acme.role, _second_role(acme)]
    claimed = _active_grants(acme, roles, users=3, prefix="claimed")
    unclaimed = _active_grants(acme, roles, users=3, prefix="due")
    ids = claimed + unclaimed
    purge_broker()

    _make_due(claimed)
    settings.AWS_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens: the deny cannot be put
    aws.reset_caches()
    assert expiry.grants_expire_due() == 0
    settings.AWS_ENDPOINT_URL = local_aws
    aws.reset_caches()
    assert _statuses(claimed) == {Grant.Status.EXPIRING}
    _make_due(unclaimed)
    assert _statuses(unclaimed) == {Grant.Status.ACTIVE}

    Role.objects.filter(pk__in=[r.pk for r in roles]).update(iam_retry_at=None)  # the backoff is over
    env = worker_env
    workers = [WorkerProcess(env, tmp_path / f"worker{i}.log", beat=False).start() for i in (1, 2)]
    try:
        signatures = [tasks.expiry_sweep.s()] + [tasks.role_finish_endings.s(r.pk) for r in roles]
        task_ids = [f"dup-{i}-{time.monotonic_ns()}" for i in range(len(signatures))]
        sent = []
        # Every message once, then every message again (as a redelivery after a lost ack would come).
        for _ in range(2):
            for signature, task_id in zip(signatures, task_ids, strict=True):
                signature.apply_async(task_id=task_id)
                sent.append(task_id)
        wait_for(
            lambda: len(_succeeded_of(workers, sent)) >= len(sent),
            timeout=60,
            what=lambda: "all six deliveries to finish\n" + "\n".join(w.output() for w in workers),
        )
    finally:
        for worker in workers:
            worker.stop()

    runs = _succeeded(workers)
    # Only these messages ran: a stray producer (a beat left running by another test) would make the count
    # below meaningless, so it fails here by name.
    assert Counter(task_id for _, task_id, _ in runs) == Counter(sent), runs
    # The tasks return how many grants they ended: between all deliveries, each grant was ended once.
    assert sum(n for _, _, n in runs) == len(ids)
    assert _all_expired(ids)
    assert _expired_events(ids) == Counter({str(g): 1 for g in ids})
    _assert_each_holder_denied_once(acme, ids)
    assert_audit_chain_whole()


# --- d. console federation ------------------------------------------------------------------------------------

SIGNIN_TOKEN = (
    "VCQgs5qZZt3Q6fn8Tr5EXAMPLE-pTr2a4fGIHVSn_l7hYzdXQr8SNN2DqLHU_qdlYf9ktvp6k_6Jd2n85DsgwD2EUHJAfuD1WfWxAFcEeTzFHC"
    "AE1G2cKqt56EA0B5qrzL2yG6uY4R1qYJ4YEd7i-6kW3hWp7Ww2w-ls2QUAAMc9V-ajzm3bo6W3sEXAMPLEP6EcLbnBO8rJmKbrTKfLJo7c"
)


class FederationEndpoint:
    """Stands in for https://signin.aws.amazon.com/federation, which moto does not implement and which cannot be
    reached from here. It records each request and answers like the real `getSigninToken` does (a JSON object
    with a `SigninToken`), or, when told to, like a failing endpoint would."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.mode = "ok"
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                endpoint.requests.append((parts.path, query))
                session = query.get("Session", [""])[0]
                if endpoint.mode == "ok":
                    status, body, kind = 200, json.dumps({"SigninToken": SIGNIN_TOKEN}), "application/json"
                elif endpoint.mode == "error":
                    # A failure page that echoes what it was sent: Porte must not pass any of it on.
                    status, body, kind = 400, f"<html>Bad session {session}</html>", "text/html"
                elif endpoint.mode == "html":
                    status, body, kind = 200, f"<html>Sign in {session}</html>", "text/html"
                else:
                    status, body, kind = 200, json.dumps({"Error": session}), "application/json"
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/federation"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def federation(settings) -> Iterator[FederationEndpoint]:
    endpoint = FederationEndpoint()
    settings.AWS_FEDERATION_URL = endpoint.url
    settings.AWS_CONSOLE_URL = "https://console.aws.amazon.com/"
    settings.PUBLIC_URL = "https://porte.example.test"
    yield endpoint
    endpoint.close()


@pytest.fixture
def alice_grant(acme, alice) -> Grant:
    request = request_create(
        requester=alice,
        role=acme.role,
        justification="Console check TICKET-7",
        duration=timedelta(minutes=30),
    )
    grant = activation.grant_activate(grant_id=request.grant.pk)
    assert grant.status == Grant.Status.ACTIVE
    return grant


def _session_sent(endpoint: FederationEndpoint) -> dict[str, str]:
    (path, query), *_ = endpoint.requests
    assert path == "/federation"
    assert set(query) == {"Action", "Session"} and query["Action"] == ["getSigninToken"]
    return json.loads(query["Session"][0])


def _login_url(endpoint: FederationEndpoint, destination: str) -> str:
    query = (
        "Action=login&Issuer=https%3A%2F%2Fporte.example.test"
        f"&Destination={destination}&SigninToken={SIGNIN_TOKEN}"
    )
    return f"{endpoint.url}?{query}"


def test_console_sign_in_url_exchanges_the_minted_session_for_a_login_url(
    alice_grant, alice, federation, settings
):
    """The federation endpoint is replaced by a loopback stand-in (moto does not implement it and AWS cannot be
    reached here); everything up to it is real: the credentials come from moto's STS through credential_mint."""
    minted = minting.credential_mint(grant_id=alice_grant.pk, user=alice, kind=CredentialIssue.Kind.CONSOLE)

    url = console_sign_in_url(minted.credentials, issuer=settings.PUBLIC_URL)

    assert len(federation.requests) == 1
    assert _session_sent(federation) == {
        "sessionId": minted.credentials.access_key_id,
        "sessionKey": minted.credentials.secret_access_key,
        "sessionToken": minted.credentials.session_token,
    }
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == federation.url
    assert parse_qs(parts.query) == {
        "Action": ["login"],
        "Issuer": ["https://porte.example.test"],
        "Destination": ["https://console.aws.amazon.com/"],
        "SigninToken": [SIGNIN_TOKEN],
    }
    assert url == _login_url(federation, "https%3A%2F%2Fconsole.aws.amazon.com%2F")
    # An explicit destination (a service's console page) is carried through.
    federation.requests.clear()
    deep = console_sign_in_url(
        minted.credentials, issuer=settings.PUBLIC_URL, destination="https://console.aws.amazon.com/ec2/home"
    )
    assert parse_qs(urlsplit(deep).query)["Destination"] == ["https://console.aws.amazon.com/ec2/home"]


@pytest.mark.parametrize("mode", ["error", "html", "no-token", "unreachable"])
def test_a_failing_federation_endpoint_gives_console_unavailable_without_secrets(
    alice_grant, alice, federation, settings, mode
):
    """Whatever the endpoint does wrong (4xx echoing the session, HTML, JSON without a token, nothing
    listening), the error says so and carries neither the secret key nor the session token."""
    minted = minting.credential_mint(grant_id=alice_grant.pk, user=alice, kind=CredentialIssue.Kind.CONSOLE)
    federation.mode = mode
    if mode == "unreachable":
        settings.AWS_FEDERATION_URL = f"http://127.0.0.1:{free_port()}/federation"

    with pytest.raises(ConsoleUnavailable) as raised:
        console_sign_in_url(minted.credentials, issuer=settings.PUBLIC_URL)

    message = str(raised.value)
    assert "did not issue a sign-in token" in message and settings.AWS_FEDERATION_URL in message
    assert minted.credentials.secret_access_key not in message
    assert minted.credentials.session_token not in message
    # Raised `from None`: a traceback does not show the underlying error, whose text may carry the request URL
    # (and with it the session).
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_console_view_redirects_the_holder_to_the_federation_login(
    alice_grant, alice, federation, settings, local_aws
):
    """POST /grants/<id>/console/ by the holder: credentials minted (a console CredentialIssue), exchanged at the
    federation endpoint (the loopback stand-in: the real one cannot run here) and the browser sent to the login
    URL. The session sent is the one moto issued for the grant's role."""
    client = Client()
    sign_in_as(client, alice)

    response = client.post(f"/grants/{alice_grant.pk}/console/")

    assert response.status_code == 302
    assert response["Location"] == _login_url(federation, "https%3A%2F%2Fconsole.aws.amazon.com%2F")
    assert response["Cache-Control"].startswith("max-age=0") and "no-store" in response["Cache-Control"]
    session = _session_sent(federation)
    issue = CredentialIssue.objects.get(grant=alice_grant)
    assert issue.kind == CredentialIssue.Kind.CONSOLE and issue.access_key_id == session["sessionId"]
    caller = boto3.client(
        "sts",
        endpoint_url=local_aws,
        region_name="eu-west-1",
        aws_access_key_id=session["sessionId"],
        aws_secret_access_key=session["sessionKey"],
        aws_session_token=session["sessionToken"],
    ).get_caller_identity()
    assert caller["Arn"].startswith(
        f"arn:aws:sts::{alice_grant.role.partner.aws_account_id}:assumed-role/porte-readonly/"
    )

    # The endpoint failing: back to the grant page with the reason, and no secret on it.
    federation.requests.clear()
    federation.mode = "error"
    failed = client.post(f"/grants/{alice_grant.pk}/console/")
    assert failed.status_code == 302 and failed["Location"] == f"/grants/{alice_grant.pk}/"
    secret = _session_sent(federation)
    page = client.get(failed["Location"]).content.decode()
    assert "did not issue a sign-in token" in page
    assert secret["sessionKey"] not in page and secret["sessionToken"] not in page
    # The failed click issued nothing anyone can use: no CredentialIssue was recorded for it.
    assert CredentialIssue.objects.filter(grant=alice_grant).count() == 1


# --- e. everything at once on one role, with AWS slow ---------------------------------------------------------


class _Outcomes:
    """What the people of a fault round did: refusals with a message are answers; anything else is a failure."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def attempt(self, what: str, call: Callable[[], object]) -> None:
        try:
            call()
        except (minting.GrantNotUsable, ValidationError):
            pass  # "you already hold it", "this grant was revoked at ..."
        except Exception as exc:
            self.failures.append(f"{what}: {type(exc).__name__}: {exc}")


def _active_grant(acme: World, user) -> Grant:  # type: ignore[no-untyped-def]
    current = Grant.objects.filter(user=user, role=acme.role, status=Grant.Status.ACTIVE).first()
    if current is not None:
        return current
    Grant.objects.filter(user=user, role=acme.role, status=Grant.Status.PENDING).update(
        status=Grant.Status.REVOKED, ended_at=timezone.now()
    )
    request = request_create(
        requester=user, role=acme.role, justification="Fault round", duration=timedelta(minutes=30)
    )
    return activation.grant_activate(grant_id=request.grant.pk)


def _fault_round(acme: World, people: list, outcomes: _Outcomes, round_: int) -> tuple[list, int]:  # type: ignore[type-arg]
    """The calls of one round (run together), and the grant left to expire in it."""
    revoker, minter, holder, expiring = people
    grants = {user.pk: _active_grant(acme, user) for user in people}
    _make_due([grants[expiring.pk].pk], ends_in=timedelta(seconds=1))

    def request(user, why: str) -> object:  # type: ignore[no-untyped-def]
        return request_create(
            requester=user, role=acme.role, justification=why, duration=timedelta(minutes=30)
        )

    def revoke_and_request_again() -> None:
        outcomes.attempt(
            "revoke", lambda: revocation.grant_revoke(grant=grants[revoker.pk], reason="done", actor=revoker)
        )
        outcomes.attempt("request again", lambda: request(revoker, "Again, at once"))

    def mint() -> None:
        outcomes.attempt(
            "mint",
            lambda: minting.credential_mint(
                grant_id=grants[minter.pk].pk, user=minter, kind="cli", source_ip="198.51.100.20"
            ),
        )

    calls = [
        revoke_and_request_again,
        mint,
        lambda: outcomes.attempt("request while holding", lambda: request(holder, "More of the same")),
        lambda: outcomes.attempt(
            "revoke by staff",
            lambda: revocation.grant_revoke(grant=grants[minter.pk], reason=f"round {round_}"),
        ),
    ]
    return calls, grants[expiring.pk].pk


def test_revoke_re_request_mint_and_expiry_at_once_with_aws_slow_fail_no_operation(
    acme, worker_env, tmp_path, local_aws, settings
):
    """Two worker processes (one with beat, sweeping every 0.5 s) and threads of this process work on the same
    role and partner at once, every AWS call slowed by 150 ms through a proxy in front of moto: people revoke
    their grant and request the role again at once, mint sessions while staff revoke them, request while already
    holding it, and let a grant expire, round after round. No operation fails (a refusal with a message is an
    answer; a database error is a failure), no worker task fails, and each person's latest revocation is on the
    role."""
    people = [make_member(acme.partner, f"busy{i}") for i in range(4)]
    outcomes = _Outcomes()
    with AwsProxy(local_aws, delay=lambda call: 0.15) as proxy:
        settings.AWS_ENDPOINT_URL = proxy.url
        aws.reset_caches()
        env = {**worker_env, "AWS_ENDPOINT_URL": proxy.url}
        workers = [
            WorkerProcess(env, tmp_path / "beat-worker.log", beat=True).start(),
            WorkerProcess(env, tmp_path / "worker.log", beat=False).start(),
        ]
        try:
            for round_ in range(3):
                calls, expiring = _fault_round(acme, people, outcomes, round_)
                for outcome in run_together(*calls):
                    if isinstance(outcome, BaseException):
                        outcomes.failures.append(f"round {round_}: {type(outcome).__name__}: {outcome}")

                def settled(expiring: int = expiring) -> bool:
                    waiting = Grant.objects.filter(status__in=[Grant.Status.EXPIRING, Grant.Status.REVOKING])
                    return not waiting.exists() and _statuses([expiring]) == {Grant.Status.EXPIRED}

                wait_for(settled, timeout=60, what=lambda: "every ended grant's deny\n" + workers[0].output())
        finally:
            for worker in workers:
                worker.stop()
            settings.AWS_ENDPOINT_URL = local_aws
            aws.reset_caches()

    assert not outcomes.failures, "\n".join(outcomes.failures)
    logs = "\n".join(w.log_path.read_text(errors="replace") for w in workers)
    assert "deadlock detected" not in logs
    assert not re.findall(r"Task \S+\[[^\]]+\] raised unexpected", logs), logs[-5000:]
    ended = list(
        Grant.objects.filter(
            status__in=[Grant.Status.EXPIRED, Grant.Status.REVOKED], deny_cutoff__isnull=False
        )
    )
    assert len(ended) >= 6
    _assert_each_holder_latest_denied(acme, ended)
    assert_audit_chain_whole()


def _assert_each_holder_latest_denied(acme: World, ended: list[Grant]) -> None:
    document = role_inline_policy(
        acme.partner.aws_account_id, acme.role.iam_name, policies.REVOCATIONS_POLICY_NAME
    )
    denied = dict(denied_identities(document))
    latest: dict[str, str] = {}
    for grant in Grant.objects.filter(pk__in=[g.pk for g in ended]).select_related("user"):
        cutoff = policies.iso(grant.deny_cutoff)
        latest[grant.user.source_identity] = max(cutoff, latest.get(grant.user.source_identity, ""))
    assert denied == latest
