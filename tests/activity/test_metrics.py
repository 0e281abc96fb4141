"""The metrics dashboard and /metrics, from a known set-up: every figure is asserted, and the Prometheus text is
parsed strictly; /metrics answers only a scraper with the right token, or staff."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.db import transaction
from django.test import Client
from django.utils import timezone

from activity import metrics
from activity.alerts.rules import Draft
from activity.alerts.services import alerts_record
from activity.metrics import _Exposition
from activity.models import Alert
from grants.models import AccessRequest, Grant
from partners.services import sign_in_refuse
from portal.health import health_sample_record
from portal.models import HealthSample
from tests.activity.alerting import load
from tests.activity.conftest import active_grant
from tests.fixtures.domain import make_member, sign_in_as
from tests.helpers import INLINE_SCRIPT_OR_STYLE

pytestmark = pytest.mark.django_db
TOKEN = "scrape-me-0123456789abcdef"


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    cache.delete(metrics.CACHE_KEY)  # the figures are cached


def _day(at: datetime) -> int:
    """Index of `at`'s day in the figures' 30 days."""
    return 29 - (timezone.now().astimezone(UTC).date() - at.astimezone(UTC).date()).days


@pytest.fixture
def known(simulator, acme, alice, alice_cli):  # type: ignore[no-untyped-def]
    """3 refused sign-ins; 4 refused AWS calls (and a throttled one, and successes); alerts: 2 violations and 1
    burst; two grants ended (deny after 4 s and 10 s), requests active after 2 s and 6 s; health 5 ok of 6."""
    now = timezone.now()
    for reason in ("inactive partner", "unknown idp", "domain mismatch"):
        sign_in_refuse(identity_provider=None, provider_id="oidc-x", reason=reason)

    account = acme.partner.aws_account_id
    records = simulator.session_records(
        alice_cli, at=now - timedelta(minutes=50), mint=False, reads=2, writes=1, denied=3
    )
    records[-1]["errorCode"] = "Client.UnauthorizedOperation"
    throttled = simulator.session_records(
        alice_cli, at=now - timedelta(minutes=40), mint=False, reads=0, writes=0, denied=2
    )
    throttled[0]["errorCode"] = "ThrottlingException"
    load(simulator, account, records + throttled, now - timedelta(minutes=50))
    Alert.objects.all().delete()  # whatever these raised: the alerts below are the known ones

    def alert(rule: str, key: str) -> None:
        at = now - timedelta(minutes=30)
        alerts_record(drafts=[Draft(rule, "high", key, key, [], 1, at, at, partner_id=acme.partner.pk)])

    alert(Alert.Rule.OUTSIDE_WINDOW, "a")
    alert(Alert.Rule.AFTER_GRANT_END, "b")
    alert(Alert.Rule.DENIED_BURST, "c")

    # alice_cli's grant expired (deny put 4 s after its end); Bob's was revoked (deny put 10 s after the request).
    bob = make_member(acme.partner, "bob")
    revoked = active_grant(acme, bob)
    for grant, status, start, took, active_after in (
        (alice_cli.grant, Grant.Status.EXPIRED, now - timedelta(hours=1), 4, 2),
        (revoked, Grant.Status.REVOKED, now - timedelta(minutes=30), 10, 6),
    ):
        requested = start - timedelta(minutes=20)
        AccessRequest.objects.filter(pk=grant.request_id).update(created_at=requested, decided_at=requested)
        fields = {"claimed_at": start} if status == Grant.Status.REVOKED else {"ends_at": start}
        Grant.objects.filter(pk=grant.pk).update(
            status=status,
            starts_at=requested,
            activated_at=requested + timedelta(seconds=active_after),
            ended_at=start + timedelta(seconds=took),
            **fields,
        )
    for ok in (True, True, True, False):
        HealthSample.objects.create(ok=ok, at=now - timedelta(minutes=5))
    # Two days back, not one: in the first minutes after midnight (UTC) "5 minutes ago" is yesterday already, and
    # the two days' samples must never share a day.
    HealthSample.objects.bulk_create(HealthSample(ok=True, at=now - timedelta(days=2)) for _ in range(2))
    HealthSample.objects.create(ok=False, at=now - timedelta(days=45))  # outside the 30 days
    return now


@pytest.mark.aws
def test_figures_from_a_known_setup(known) -> None:  # type: ignore[no-untyped-def]
    f = metrics.compute()
    assert len(f.days) == 30 and f.days[-1] == known.astimezone(UTC).date()
    assert f["signins_refused"].total == 3
    assert f["access_denied"].total == 4  # AccessDenied x2 + Client.UnauthorizedOperation; not the throttled
    assert f["unauthorized_attempts"].total == 7
    assert f["access_denied"].values[_day(known - timedelta(minutes=50))] == 4
    assert f["policy_violations"].total == 2 and f["security_incidents"].total == 3
    assert f["time_to_revoke_p50"].total == pytest.approx(7.0)
    assert f["time_to_revoke_p95"].total == pytest.approx(9.7)
    assert f["request_processing_p50"].total == pytest.approx(4.0)
    assert f.request_stages[("approval", "0.5")] == 0.0 and f.request_stages[
        ("total", "0.95")
    ] == pytest.approx(5.8)
    assert f["availability"].total == pytest.approx(5 / 6) and f.health_samples == 6
    assert f["availability"].values[_day(known - timedelta(minutes=5))] == pytest.approx(0.75)
    assert f["availability"].values[_day(known - timedelta(days=2))] == 1.0
    assert f["availability"].values[0] is None  # no samples that day: no figure, not zero
    for key in ("signins_refused", "access_denied", "security_incidents"):
        assert sum(v or 0 for v in f[key].values) == f[key].total


@pytest.mark.aws
def test_dashboard_shows_the_figures_as_svg(known, staff) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    sign_in_as(client, staff)
    response = client.get("/staff/metrics/")
    page = response.content.decode()
    assert response.status_code == 200
    for key, shown in (
        ("unauthorized_attempts", "7"),
        ("policy_violations", "2"),
        ("security_incidents", "3"),
        ("time_to_revoke_p50", "7.0 s"),
        ("request_processing_p50", "4.0 s"),
        ("availability", "83.33 %"),
    ):
        section = re.search(rf'id="metric-{key}".*?</section>', page, re.S)
        assert section is not None
        assert f">{shown}</p>" in section.group(0)
        assert section.group(0).count("<rect ") == 30
    # The CSP forbids inline styles and scripts (scripts are files of Porte's own).
    assert not INLINE_SCRIPT_OR_STYLE.search(page)


def test_health_samples_follow_the_health_check() -> None:
    sample = health_sample_record()
    assert sample is not None and sample.ok and HealthSample.objects.count() == 1


# --- /metrics ----------------------------------------------------------------------------------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"'
_SAMPLE = re.compile(
    rf"^({_NAME})(?:\{{((?:{_LABEL})(?:,{_LABEL})*)?\}})? (NaN|[+-]?Inf|-?[0-9.]+(?:e[+-]?[0-9]+)?)$"
)
_LABELS = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"')


def parse_exposition(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """A strict reader of the text format: HELP and TYPE before each metric's samples, well-formed labels."""
    assert text.endswith("\n")
    families: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert re.fullmatch(_NAME, name) and name not in families
            families[name] = {}
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name in families and kind in ("gauge", "counter") and name not in typed
            typed.add(name)
        else:
            match = _SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name, labels, value = match.groups()
            assert name in typed
            key = tuple(sorted(_LABELS.findall(labels or "")))
            assert key not in families[name]
            families[name][key] = float(value)
    return families


@pytest.mark.aws
def test_prometheus_text_has_the_figures(known, settings) -> None:  # type: ignore[no-untyped-def]
    settings.METRICS_TOKEN = TOKEN
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=0.0.4")
    families = parse_exposition(response.content.decode())
    attempts = families["porte_unauthorized_access_attempts"]
    assert attempts[(("source", "signin"), ("window", "30d"))] == 3
    assert attempts[(("source", "aws"), ("window", "30d"))] == 4
    assert families["porte_policy_violations"][(("window", "30d"),)] == 2
    assert families["porte_security_incidents"][(("window", "30d"),)] == 3
    assert families["porte_alerts"][(("rule", "denied_burst"), ("severity", "high"), ("window", "30d"))] == 1
    assert families["porte_alerts_open"][(("severity", "high"),)] == 3
    assert families["porte_time_to_revoke_seconds"][(("quantile", "0.5"), ("window", "30d"))] == 7
    assert (
        families["porte_access_request_processing_seconds"][
            (("quantile", "0.5"), ("stage", "total"), ("window", "30d"))
        ]
        == 4
    )
    assert families["porte_availability_ratio"][(("window", "30d"),)] == pytest.approx(5 / 6)


def test_prometheus_text_has_the_audit_chains_unsealed_tail(settings, staff) -> None:  # type: ignore[no-untyped-def]
    from portal.audit import audit_record, seal

    settings.METRICS_TOKEN = TOKEN
    seal()
    with transaction.atomic():
        audit_record(action="test.one", obj=None)
        audit_record(action="test.two", obj=None)

    before = parse_exposition(Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode())
    assert before["porte_audit_unsealed_events"][()] == 2
    assert before["porte_audit_unsealed_oldest_seconds"][()] >= 0
    assert seal() == 2
    after = parse_exposition(Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode())
    assert after["porte_audit_unsealed_events"][()] == 0
    assert after["porte_audit_unsealed_oldest_seconds"][()] == 0


def test_label_values_are_escaped() -> None:
    out = _Exposition()
    out.metric("porte_x", "gauge", "Help with \\ and\nnewline.", [({"v": 'a"b\\c\nd'}, None)])
    text = out.text()
    assert (
        text
        == '# HELP porte_x Help with \\\\ and\\nnewline.\n# TYPE porte_x gauge\nporte_x{v="a\\"b\\\\c\\nd"} NaN\n'
    )
    assert parse_exposition(text)["porte_x"] == {
        (("v", 'a\\"b\\\\c\\nd'),): pytest.approx(float("nan"), nan_ok=True)
    }


def test_metrics_are_refused_without_the_token(settings, staff, alice) -> None:  # type: ignore[no-untyped-def]
    settings.METRICS_TOKEN = TOKEN
    assert Client().get("/metrics").status_code == 404
    wrong = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"].startswith("Bearer")
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    partner_user = Client()
    sign_in_as(partner_user, alice)
    assert partner_user.get("/metrics").status_code == 404
    assert partner_user.get("/metrics", HTTP_AUTHORIZATION="Bearer guess").status_code == 401
    staff_client = Client()
    sign_in_as(staff_client, staff)
    assert staff_client.get("/metrics").status_code == 200
    # No token configured: no token is ever right, even an empty one.
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401


def test_figures_are_cached_briefly(settings, staff) -> None:  # type: ignore[no-untyped-def]
    settings.METRICS_CACHE_SECONDS = 60
    first = metrics.figures()
    HealthSample.objects.create(ok=True)
    assert metrics.figures().computed_at == first.computed_at  # served from the cache
    cache.delete(metrics.CACHE_KEY)
    assert metrics.figures().health_samples == 1
