"""Each detection rule fires on a positive case and stays silent on a near miss. Records are the simulator's
(the documented CloudTrail format) for sessions really minted through moto's STS; they are loaded with load_log,
the call ingestion makes per file, so the rules run where they run in production."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from django.utils import timezone

from activity.alerts import rules
from activity.alerts.rules import is_denied, sensitive_kind
from activity.models import Alert, SeenSourceIp
from grants.models import CredentialIssue, Grant
from partners.models import Partner
from tests.activity.alerting import alerts, load

pytestmark = [pytest.mark.django_db, pytest.mark.aws]

Rule = Alert.Rule


def _session(sim, issue: CredentialIssue, at: datetime, **counts: int) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    counts = {"reads": 0, "writes": 0, "denied": 0, **counts}
    return sim.session_records(issue, at=at, mint=False, **counts)


def _call(sim, issue: CredentialIssue, source: str, name: str, at: datetime, **kwargs: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    identity = sim.porte_identity(issue)
    return sim.record(issue.grant.role.partner.aws_account_id, identity, source, name, at=at, **kwargs)


def _denied(sim, issue: CredentialIssue, times: list[datetime]) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return [
        _call(sim, issue, "iam.amazonaws.com", "CreateUser", t, read_only=False, error=("AccessDenied", "no"))
        for t in times
    ]


def _load_refusals(sim, account: str, issue: CredentialIssue, times: list[datetime]) -> None:  # type: ignore[no-untyped-def]
    """One log file of refused calls at `times`, delivered at the first of them."""
    load(sim, account, _denied(sim, issue, times), times[0])


# --- bursts of refused calls -----------------------------------------------------------------------------------


def test_a_burst_of_refused_calls_is_one_alert(simulator, acme, alice_cli) -> None:  # type: ignore[no-untyped-def]
    account = acme.partner.aws_account_id
    start = timezone.now().replace(microsecond=0) - timedelta(minutes=30)
    # Ten in four minutes (the default: 10 within 5 min): one alert, not ten.
    _load_refusals(simulator, account, alice_cli, [start + timedelta(seconds=25 * i) for i in range(10)])
    [alert] = alerts(Rule.DENIED_BURST)
    assert alert.event_count == 10 and alert.severity == Alert.Severity.MEDIUM
    assert alert.user_id == alice_cli.grant.user_id and alert.partner_id == acme.partner.pk
    assert alert.grant_id == alice_cli.grant_id and len(alert.event_ids) == 10

    # The burst goes on in the next file (and another kind of refusal): the same alert grows.
    more = _denied(simulator, alice_cli, [start + timedelta(minutes=5, seconds=i) for i in range(3)])
    more[0]["errorCode"] = "Client.UnauthorizedOperation"
    load(simulator, account, more, start + timedelta(minutes=5))
    [alert] = alerts(Rule.DENIED_BURST)
    assert alert.event_count == 13


def test_a_burst_split_across_files_is_found(simulator, acme, alice_cli) -> None:  # type: ignore[no-untyped-def]
    account = acme.partner.aws_account_id
    start = timezone.now().replace(microsecond=0) - timedelta(minutes=30)
    _load_refusals(simulator, account, alice_cli, [start + timedelta(seconds=10 * i) for i in range(6)])
    assert alerts() == []
    _load_refusals(
        simulator, account, alice_cli, [start + timedelta(minutes=2, seconds=10 * i) for i in range(6)]
    )
    [alert] = alerts(Rule.DENIED_BURST)
    assert alert.event_count == 12


def test_two_bursts_far_apart_are_two_alerts(simulator, acme, alice_cli) -> None:  # type: ignore[no-untyped-def]
    account = acme.partner.aws_account_id
    start = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    times = [start + timedelta(seconds=10 * i) for i in range(10)]
    times += [start + timedelta(minutes=30, seconds=10 * i) for i in range(11)]
    load(simulator, account, _denied(simulator, alice_cli, times), start)
    assert [a.event_count for a in alerts(Rule.DENIED_BURST)] == [10, 11]


def test_refused_calls_below_the_threshold_or_spread_out_raise_nothing(simulator, acme, alice_cli) -> None:  # type: ignore[no-untyped-def]
    account = acme.partner.aws_account_id
    start = timezone.now().replace(microsecond=0) - timedelta(hours=2)
    # Nine within the window.
    _load_refusals(simulator, account, alice_cli, [start + timedelta(seconds=20 * i) for i in range(9)])
    # Ten, but one a minute: never ten within five minutes.
    later = start + timedelta(minutes=30)
    _load_refusals(simulator, account, alice_cli, [later + timedelta(minutes=i) for i in range(10)])
    # Ten errors that are not refusals (throttling).
    records = _denied(simulator, alice_cli, [start + timedelta(minutes=60, seconds=i) for i in range(10)])
    for record in records:
        record["errorCode"] = "ThrottlingException"
    load(simulator, account, records, start + timedelta(minutes=60))
    assert alerts(Rule.DENIED_BURST) == []


def test_denied_codes() -> None:
    assert all(
        map(
            is_denied,
            [
                "AccessDenied",
                "AccessDeniedException",
                "Client.UnauthorizedOperation",
                "UnauthorizedOperation",
            ],
        )
    )
    assert not any(map(is_denied, ["ThrottlingException", "NoSuchEntity", "ValidationError", ""]))


# --- outside the access window ---------------------------------------------------------------------------------


def _office_hours(partner: Partner) -> None:
    Partner.objects.filter(pk=partner.pk).update(
        access_timezone="Europe/Paris", access_days=[0, 1, 2, 3, 4], access_start=time(9), access_end=time(17)
    )


def test_porte_session_outside_the_window_raises_one_alert_per_day(simulator, acme, alice_cli) -> None:  # type: ignore[no-untyped-def]
    _office_hours(acme.partner)
    account = acme.partner.aws_account_id
    saturday = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)  # a Saturday, 15:00 in Paris
    load(simulator, account, _session(simulator, alice_cli, saturday, reads=3, writes=1), saturday)
    load(simulator, account, _session(simulator, alice_cli, saturday + timedelta(hours=1), reads=2), saturday)
    [alert] = alerts(Rule.OUTSIDE_WINDOW)
    assert alert.event_count == 6 and alert.grant_id == alice_cli.grant_id
    assert alert.detail["day"] == "2026-11-21" and "Europe/Paris" in alert.summary


def test_activity_inside_the_window_or_without_one_raises_nothing(simulator, acme, alice_cli) -> None:  # type: ignore[no-untyped-def]
    account = acme.partner.aws_account_id
    saturday = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)
    load(
        simulator, account, _session(simulator, alice_cli, saturday, reads=3), saturday
    )  # no window: any time
    _office_hours(acme.partner)
    wednesday = datetime(2026, 11, 18, 15, 59, tzinfo=UTC)  # 16:59 in Paris, a minute before it closes
    load(simulator, account, _session(simulator, alice_cli, wednesday, reads=3, writes=1), wednesday)
    # Another principal in the account on Saturday is flagged activity, not a Porte session outside its window.
    other = simulator.principal_records(account, simulator.iam_user_identity(account), at=saturday, reads=2)
    load(simulator, account, other, saturday)
    assert alerts(Rule.OUTSIDE_WINDOW) == []


# --- sensitive actions -----------------------------------------------------------------------------------------


def _ingress(cidr: str, *, ipv6: bool = False) -> dict[str, Any]:
    ranges = (
        {"ipv6Ranges": {"items": [{"cidrIpv6": cidr}]}}
        if ipv6
        else {"ipRanges": {"items": [{"cidrIp": cidr}]}}
    )
    return {
        "groupId": "sg-0123456789abcdef0",
        "ipPermissions": {
            "items": [{"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "groups": {}, **ranges}]
        },
    }


def test_sensitive_changes_raise_an_alert_per_principal(simulator, acme, alice_cli) -> None:  # type: ignore[no-untyped-def]
    account = acme.partner.aws_account_id
    at = timezone.now().replace(microsecond=0) - timedelta(minutes=10)
    records = [
        _call(
            simulator,
            alice_cli,
            "iam.amazonaws.com",
            "CreateAccessKey",
            at,
            read_only=False,
            request={"userName": "x"},
        ),
        _call(simulator, alice_cli, "iam.amazonaws.com", "AttachRolePolicy", at, read_only=False),
        _call(
            simulator,
            alice_cli,
            "ec2.amazonaws.com",
            "AuthorizeSecurityGroupIngress",
            at,
            read_only=False,
            request=_ingress("0.0.0.0/0"),
        ),
    ]
    load(simulator, account, records, at)
    # Tampering with the trail, by another principal: its own alert, critical.
    intruder = simulator.iam_user_identity(account, "intruder")
    stop = simulator.record(
        account, intruder, "cloudtrail.amazonaws.com", "StopLogging", at=at, read_only=False
    )
    load(simulator, account, [stop], at)
    by_alice, by_intruder = alerts(Rule.SENSITIVE_ACTION)
    assert by_alice.event_count == 3 and by_alice.severity == Alert.Severity.HIGH
    assert set(by_alice.detail["kinds"]) == {"iam", "network"} and by_alice.user_id == alice_cli.grant.user_id
    assert by_intruder.severity == Alert.Severity.CRITICAL and by_intruder.user_id is None
    assert by_intruder.principal.endswith("user/intruder") and "StopLogging" in by_intruder.summary


def test_reads_refusals_and_narrow_ingress_are_not_sensitive(simulator, acme, alice_cli) -> None:  # type: ignore[no-untyped-def]
    account = acme.partner.aws_account_id
    at = timezone.now().replace(microsecond=0) - timedelta(minutes=10)
    records = [
        _call(simulator, alice_cli, "iam.amazonaws.com", "GetRole", at),
        _call(simulator, alice_cli, "iam.amazonaws.com", "ListUsers", at),
        _call(simulator, alice_cli, "kms.amazonaws.com", "DescribeKey", at),
        _call(
            simulator,
            alice_cli,
            "ec2.amazonaws.com",
            "AuthorizeSecurityGroupIngress",
            at,
            read_only=False,
            request=_ingress("198.51.100.7/32"),
        ),
        _call(
            simulator,
            alice_cli,
            "iam.amazonaws.com",
            "CreateUser",
            at,
            read_only=False,
            error=("AccessDenied", "no"),
        ),
    ]
    load(simulator, account, records, at)
    assert alerts(Rule.SENSITIVE_ACTION) == []


def test_sensitive_kinds() -> None:
    assert sensitive_kind("kms.amazonaws.com", "ScheduleKeyDeletion", {}) == "kms"
    assert sensitive_kind("s3.amazonaws.com", "PutBucketPolicy", {}) == "s3"
    assert sensitive_kind("s3.amazonaws.com", "DeleteBucketPublicAccessBlock", {}) == "s3"
    assert sensitive_kind("cloudtrail.amazonaws.com", "PutEventSelectors", {}) == "cloudtrail"
    assert sensitive_kind("iam.amazonaws.com", "UpdateAssumeRolePolicy", {}) == "iam"
    world = _ingress("::/0", ipv6=True)
    assert sensitive_kind("ec2.amazonaws.com", "AuthorizeSecurityGroupIngress", world) == "network"
    assert sensitive_kind("s3.amazonaws.com", "GetBucketPolicy", {}) is None
    assert sensitive_kind("iam.amazonaws.com", "ListAttachedRolePolicies", {}) is None


# --- credentials used after the grant ended --------------------------------------------------------------------


def _end(grant: Grant, at: datetime) -> None:
    Grant.objects.filter(pk=grant.pk).update(
        status=Grant.Status.EXPIRED,
        starts_at=at - timedelta(hours=1),
        ends_at=at,
        ended_at=at + timedelta(seconds=3),
    )


def test_successful_calls_after_the_grant_ended_are_critical(simulator, acme, alice_cli) -> None:  # type: ignore[no-untyped-def]
    account = acme.partner.aws_account_id
    ended = timezone.now().replace(microsecond=0) - timedelta(minutes=20)
    _end(alice_cli.grant, ended)
    load(
        simulator,
        account,
        _session(simulator, alice_cli, ended + timedelta(minutes=2), reads=2, writes=1),
        ended,
    )
    load(simulator, account, _session(simulator, alice_cli, ended + timedelta(minutes=4), reads=1), ended)
    [alert] = alerts(Rule.AFTER_GRANT_END)
    assert alert.severity == Alert.Severity.CRITICAL and alert.grant_id == alice_cli.grant_id
    assert alert.event_count == 4  # one alert per grant; later events add to it
    assert alert.first_event_at > ended


def test_calls_before_the_end_refused_after_it_or_undeniable_raise_nothing(
    simulator, acme, alice_cli
) -> None:  # type: ignore[no-untyped-def]
    account = acme.partner.aws_account_id
    ended = timezone.now().replace(microsecond=0) - timedelta(minutes=20)
    _end(alice_cli.grant, ended)
    before = _session(simulator, alice_cli, ended - timedelta(minutes=3), reads=3, writes=1)
    # After the end: the deny held (AccessDenied), and sts:GetCallerIdentity, which no policy can deny.
    whoami = _call(
        simulator, alice_cli, "sts.amazonaws.com", "GetCallerIdentity", ended + timedelta(minutes=1)
    )
    after = [*_denied(simulator, alice_cli, [ended + timedelta(minutes=1)]), whoami]
    load(simulator, account, before + after, ended)
    # An active grant's session is fine.
    assert alerts(Rule.AFTER_GRANT_END) == []


def test_calls_after_an_early_revocation_count_once_the_deny_has_propagated(
    simulator, acme, alice_cli, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.ALERT_DENY_PROPAGATION_SECONDS = 60
    account = acme.partner.aws_account_id
    revoked = timezone.now().replace(microsecond=0) - timedelta(minutes=10)
    Grant.objects.filter(pk=alice_cli.grant_id).update(status=Grant.Status.REVOKED, ended_at=revoked)
    load(
        simulator, account, _session(simulator, alice_cli, revoked + timedelta(seconds=20), reads=1), revoked
    )
    assert alerts(Rule.AFTER_GRANT_END) == []  # within the deny's propagation
    load(simulator, account, _session(simulator, alice_cli, revoked + timedelta(minutes=3), reads=1), revoked)
    [alert] = alerts(Rule.AFTER_GRANT_END)
    assert alert.event_count == 1


# --- a new source IP -------------------------------------------------------------------------------------------


def test_a_new_ip_for_a_user_with_history_alerts_once(
    simulator, acme, alice_cli, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    account = acme.partner.aws_account_id
    user = alice_cli.grant.user
    at = timezone.now().replace(microsecond=0) - timedelta(hours=1)

    def from_ip(ip: str, minutes: int) -> None:
        records = _session(simulator, alice_cli, at + timedelta(minutes=minutes), reads=2)
        for record in records:
            record["sourceIPAddress"] = ip
        # As if each file's transaction committed: known pairs are then remembered by the process.
        with django_capture_on_commit_callbacks(execute=True):
            load(simulator, account, records, at + timedelta(minutes=minutes))

    from_ip("203.0.113.9", 0)  # first ever: the baseline, no alert
    assert alerts(Rule.NEW_SOURCE_IP) == []
    from_ip("203.0.113.9", 5)  # known
    assert alerts(Rule.NEW_SOURCE_IP) == []
    from_ip("198.51.100.77", 10)
    [alert] = alerts(Rule.NEW_SOURCE_IP)
    assert alert.user_id == user.pk and alert.detail == {"ip": "198.51.100.77", "known_ips": 1}
    assert alert.severity == Alert.Severity.LOW
    from_ip("198.51.100.77", 15)
    assert len(alerts(Rule.NEW_SOURCE_IP)) == 1
    assert set(SeenSourceIp.objects.filter(user=user).values_list("ip", flat=True)) == {
        "203.0.113.9",
        "198.51.100.77",
    }
    assert (user.pk, "198.51.100.77") in rules._SEEN
    rules._SEEN.clear()


def test_service_hostnames_and_unattributed_principals_have_no_ip_baseline(
    simulator, acme, alice_cli
) -> None:  # type: ignore[no-untyped-def]
    account = acme.partner.aws_account_id
    at = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    records = _session(simulator, alice_cli, at, reads=1)
    records[0]["sourceIPAddress"] = "cloudformation.amazonaws.com"  # AWS acting on the session's behalf
    records += simulator.principal_records(account, simulator.iam_user_identity(account), at=at, reads=2)
    load(simulator, account, records, at)
    assert SeenSourceIp.objects.count() == 0 and alerts() == []
