"""The `porte` command as installed (the console script of this virtualenv), run as a subprocess against the
live server: its output is credential_process JSON that moto's STS accepts, boto3 loads it from an AWS config
profile, and every failure is one line on stderr with a non-zero exit and never the token.

Personas: Alice (Acme engineer) holds an active grant on `readonly`; Bob is an Acme engineer without one; Pat is
Acme's partner admin (she sees Alice's grant but cannot mint it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import boto3
import pytest

from approvals.services import request_create
from grants.models import CredentialIssue, Grant
from grants.services import activation, revocation
from portal import services
from portal.models import User
from tests.fixtures.domain import World, make_member
from tests.helpers import purge_broker
from tests.peers.oidc_idp import free_port

pytestmark = pytest.mark.django_db(transaction=True)

PORTE = Path(sys.executable).parent / "porte"
CREDENTIAL_PROCESS_KEYS = {"Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}


@pytest.fixture(autouse=True)
def _no_messages_left_behind() -> Iterator[None]:
    yield
    # Services queue activations and role endings on commit; no worker here consumes them.
    purge_broker()


@pytest.fixture
def alice_grant(acme: World, alice: User) -> Grant:
    request = request_create(
        requester=alice, role=acme.role, justification="Inventory TICKET-42", duration=timedelta(minutes=30)
    )
    grant = activation.grant_activate(grant_id=request.grant.pk)  # as the worker would, against moto
    assert grant.status == Grant.Status.ACTIVE
    return grant


def token_for(user: User) -> str:
    return services.api_token_create(user=user, name="laptop")[1]


def porte(
    *args: str, home: Path, url: str | None = None, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed command with a clean environment: HOME is the test's, PORTE_* only as given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTE_", "PYTEST", "XDG_CONFIG"))}
    env["HOME"] = str(home)
    if url is not None:
        env["PORTE_URL"] = url
    if token is not None:
        env["PORTE_TOKEN"] = token
    return subprocess.run(
        [str(PORTE), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _failed(result: subprocess.CompletedProcess[str], message: str, token: str | None = None) -> None:
    assert result.returncode != 0, result.stdout
    assert result.stdout == ""
    assert result.stderr == f"porte: {message}\n"
    if token:
        assert token not in result.stderr


def _sts_caller(credentials: dict[str, str], endpoint: str) -> dict[str, str]:
    return boto3.client(  # type: ignore[return-value]
        "sts",
        endpoint_url=endpoint,
        region_name="eu-west-1",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    ).get_caller_identity()


def _session_arn(grant: Grant, alice: User) -> str:
    account = grant.role.partner.aws_account_id
    return f"arn:aws:sts::{account}:assumed-role/porte-readonly/porte-g{grant.pk}-{alice.public_id.hex[:8]}"


# --- credentials ---------------------------------------------------------------------------------------------------


def test_credentials_for_a_grant_are_credential_process_json_that_sts_accepts(
    live_server, alice_grant, alice, local_aws, tmp_path
):
    token = token_for(alice)
    result = porte(
        "credentials", "--grant", str(alice_grant.pk), home=tmp_path, url=live_server.url, token=token
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.endswith("\n") and result.stdout.count("\n") == 1  # exactly one JSON document
    credentials = json.loads(result.stdout)
    assert set(credentials) == CREDENTIAL_PROCESS_KEYS and credentials["Version"] == 1
    assert token not in result.stdout
    assert _sts_caller(credentials, local_aws)["Arn"] == _session_arn(alice_grant, alice)
    issue = CredentialIssue.objects.get()
    assert issue.grant == alice_grant and issue.kind == "cli"
    assert issue.access_key_id == credentials["AccessKeyId"]


def test_the_grant_is_found_by_role_or_as_the_only_active_one_with_the_token_from_its_file(
    live_server, alice_grant, alice, local_aws, tmp_path
):
    token_file = tmp_path / ".config" / "porte" / "token"
    token_file.parent.mkdir(parents=True)
    token_file.write_text(token_for(alice) + "\n")
    token_file.chmod(0o600)

    by_role = porte("credentials", "--role", "readonly", "--url", live_server.url, home=tmp_path)
    assert by_role.returncode == 0, by_role.stderr
    only_one = porte("--url", live_server.url, "credentials", home=tmp_path)
    assert only_one.returncode == 0, only_one.stderr
    for result in (by_role, only_one):
        assert _sts_caller(json.loads(result.stdout), local_aws)["Arn"] == _session_arn(alice_grant, alice)
    assert CredentialIssue.objects.filter(grant=alice_grant).count() == 2


def test_an_aws_config_profile_with_credential_process_works_in_boto3(
    live_server, alice_grant, alice, local_aws, tmp_path, monkeypatch
):
    """What a partner user pastes into ~/.aws/config, loaded by botocore's own credential_process provider."""
    config = tmp_path / "aws-config"
    config.write_text(
        "[profile porte]\n"
        f"credential_process = {PORTE} credentials --grant {alice_grant.pk} --url {live_server.url}\n"
        "region = eu-west-1\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", local_aws)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PORTE_TOKEN", token_for(alice))  # inherited by the process botocore starts
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)

    session = boto3.Session(profile_name="porte")
    assert session.client("sts").get_caller_identity()["Arn"] == _session_arn(alice_grant, alice)
    assert session.get_credentials().method == "custom-process"  # type: ignore[union-attr]
    assert CredentialIssue.objects.get().grant == alice_grant


# --- failures: one line on stderr, non-zero exit -------------------------------------------------------------------


def test_no_active_grant_says_where_to_request_access(live_server, alice_grant, acme, tmp_path):
    bob = make_member(acme.partner, "bob")
    # Pat sees Alice's active grant in her list, but it is not hers: she has no active grant either.
    pat = make_member(acme.partner, "pat", partner_admin=True)
    for user in (bob, pat):
        token = token_for(user)
        result = porte("credentials", "--role", "readonly", home=tmp_path, url=live_server.url, token=token)
        _failed(result, f"No active grant for role readonly: request access at {live_server.url}/", token)
        _failed(
            porte("credentials", home=tmp_path, url=live_server.url, token=token),
            f"No active grant: request access at {live_server.url}/",
        )
    assert not CredentialIssue.objects.exists()


def test_a_grant_that_is_not_yours_or_no_longer_active_is_explained(
    live_server, alice_grant, alice, acme, tmp_path
):
    bob_token = token_for(make_member(acme.partner, "bob"))
    _failed(
        porte(
            "credentials", "--grant", str(alice_grant.pk), home=tmp_path, url=live_server.url, token=bob_token
        ),
        f"You have no grant {alice_grant.pk}: list yours with `porte grants`",
    )
    revoked = revocation.grant_revoke(grant=alice_grant, reason="Done early", actor=alice)
    token = token_for(alice)
    _failed(
        porte("credentials", "--grant", str(alice_grant.pk), home=tmp_path, url=live_server.url, token=token),
        f"Grant {alice_grant.pk} cannot be used now: This grant was revoked at "
        f"{revoked.deny_cutoff:%Y-%m-%d %H:%M} UTC: request access again. "
        f"See {live_server.url}/grants/{alice_grant.pk}/",
    )
    _failed(
        porte("credentials", "--role", "readonly", home=tmp_path, url=live_server.url, token=token),
        f"No active grant for role readonly: request access at {live_server.url}/",
    )
    assert not CredentialIssue.objects.exists()


def test_a_bad_or_revoked_token_says_to_create_a_new_one(live_server, alice_grant, alice, tmp_path):
    message = f"Porte rejected the token (revoked or expired): create a new one at {live_server.url}/tokens/"
    unknown = "porte_abcdefgh_" + "A" * 40
    _failed(porte("credentials", home=tmp_path, url=live_server.url, token=unknown), message, unknown)

    token, secret = services.api_token_create(user=alice, name="laptop")
    services.api_token_revoke(token=token, actor=alice)
    _failed(
        porte(
            "credentials", "--grant", str(alice_grant.pk), home=tmp_path, url=live_server.url, token=secret
        ),
        message,
        secret,
    )
    _failed(
        porte("grants", home=tmp_path, url=live_server.url, token="sk-not-porte"),
        f"PORTE_TOKEN does not hold a Porte token (they start with porte_): create one at {live_server.url}/tokens/",
        "sk-not-porte",
    )
    assert not CredentialIssue.objects.exists()


def test_an_unreachable_porte_is_named(tmp_path, db):
    url = f"http://127.0.0.1:{free_port()}"
    token = "porte_abcdefgh_" + "A" * 40
    result = porte("credentials", "--role", "readonly", home=tmp_path, url=url, token=token)
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.startswith(f"porte: Cannot reach Porte at {url}: ") and "refused" in result.stderr
    assert result.stderr.count("\n") == 1 and token not in result.stderr


def test_configuration_mistakes_are_refused_before_anything_is_sent(tmp_path, db):
    token = "porte_abcdefgh_" + "A" * 40
    _failed(
        porte("credentials", home=tmp_path, token=token),
        "Set PORTE_URL or pass --url with Porte's address, e.g. https://porte.example.com",
    )
    _failed(
        porte("credentials", home=tmp_path, url="http://porte.example.com", token=token),
        "Refusing to send your token over plain http to porte.example.com: use https://",
    )
    token_file = tmp_path / ".config" / "porte" / "token"
    _failed(
        porte("credentials", home=tmp_path, url="https://porte.example.com"),
        f"No Porte token: create one at https://porte.example.com/tokens/ and save it in {token_file} "
        "(or set PORTE_TOKEN)",
    )
    token_file.parent.mkdir(parents=True)
    token_file.write_text(token)
    token_file.chmod(0o644)
    _failed(
        porte("credentials", home=tmp_path, url="https://porte.example.com"),
        f"{token_file} can be read or changed by other users (mode 644): run `chmod 600 {token_file}`, "
        "and create a new token if others may have read it",
        token,
    )


# --- listing -------------------------------------------------------------------------------------------------------


def test_grants_lists_the_callers_grants_as_a_table(live_server, alice_grant, alice, acme, tmp_path):
    result = porte("grants", home=tmp_path, url=live_server.url, token=token_for(alice))
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split() == ["GRANT", "ROLE", "PARTNER", "STATUS", "END", "(UTC)", "HOLDER"]
    assert row.split() == [
        str(alice_grant.pk),
        "readonly",
        "acme",
        "active",
        *f"{alice_grant.ends_at:%Y-%m-%d %H:%M}".split(),
        "you",
    ]
    # A partner admin sees her colleague's grant, marked with its holder.
    pat = make_member(acme.partner, "pat", partner_admin=True)
    listed = porte("grants", home=tmp_path, url=live_server.url, token=token_for(pat))
    assert listed.returncode == 0 and listed.stdout.splitlines()[1].split()[-1] == str(alice.public_id)

    # A grant that ended early shows when it ended, as the web does, not when it was planned to.
    ended = alice_grant.ends_at - timedelta(minutes=17)
    Grant.objects.filter(pk=alice_grant.pk).update(status=Grant.Status.REVOKED, ended_at=ended)
    after = porte("grants", home=tmp_path, url=live_server.url, token=token_for(alice))
    assert after.returncode == 0, after.stderr
    assert after.stdout.splitlines()[1].split()[3:6] == ["revoked", *f"{ended:%Y-%m-%d %H:%M}".split()]
