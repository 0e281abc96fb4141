"""The near-real-time path: the trail bucket notifies an SQS queue (moto delivers S3 event notifications as S3
does), and `activity_ingest_notified` ingests the files named, without listing the bucket. The listing poll stays
the safety net and skips what came this way unread; messages are deleted once their files are committed; a
message naming anything but a trail log file reads nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from activity import services as activity
from activity import trail
from activity.models import ActivityEvent, QuarantinedObject, TrailCursor, TrailFile
from activity.notified import notice
from portal import aws

pytestmark = [pytest.mark.django_db, pytest.mark.aws]


@pytest.fixture
def queue(simulator, settings) -> str:  # type: ignore[no-untyped-def]
    """A queue the trail bucket notifies of every object created (as an operator would configure it)."""
    sqs = aws.management().sqs
    url = sqs.create_queue(QueueName=f"porte-trail-{timezone.now():%H%M%S%f}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.management().s3.put_bucket_notification_configuration(
        Bucket=simulator.bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    settings.ACTIVITY_SQS_QUEUE_URL = url
    yield url
    aws.management().s3.put_bucket_notification_configuration(
        Bucket=simulator.bucket, NotificationConfiguration={}
    )


def _waiting(url: str) -> int:
    attributes = aws.management().sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_notified_files_are_ingested_without_listing_and_the_poll_skips_them(  # type: ignore[no-untyped-def]
    simulator, acme, alice_cli, queue
) -> None:
    account = acme.partner.aws_account_id
    now = timezone.now().replace(microsecond=0)
    first = simulator.session_records(alice_cli, at=now - timedelta(minutes=3), reads=3, writes=1, denied=1)
    second = simulator.session_records(alice_cli, at=now - timedelta(minutes=2), mint=False, reads=2)
    simulator.write_log(account, first, at=now - timedelta(minutes=3))
    simulator.write_log(account, second, at=now - timedelta(minutes=2))
    simulator.write_digest(account, [], at=now)  # notified too: not a log file
    assert _waiting(queue) == 4  # and S3's test event, sent when the notification was configured

    report = activity.activity_ingest_notified()

    assert (report.objects, report.events_inserted, report.quarantined) == (2, len(first) + len(second), 0)
    assert ActivityEvent.objects.filter(context__is_porte_session=True).count() == len(first) + len(second)
    assert _waiting(queue) == 0  # deleted once committed, the test event's and the digest's too
    assert not TrailCursor.objects.exists()  # no listing happened
    # The listing poll, the safety net, finds the same files kept already: read nothing, add nothing.
    polled = activity.activity_ingest()
    assert (polled.objects, polled.events_inserted) == (2, 0)
    assert ActivityEvent.objects.count() == len(first) + len(second)


def test_a_notified_file_of_an_account_of_no_partner_is_not_read(simulator, acme, queue) -> None:  # type: ignore[no-untyped-def]
    outside = "999988887777"  # in the organisation, but no partner's
    records = simulator.principal_records(
        outside, simulator.iam_user_identity(outside, "ops"), at=timezone.now()
    )
    simulator.write_log(outside, records, at=timezone.now())

    report = activity.activity_ingest_notified()

    assert (report.objects, report.events_inserted, report.quarantined) == (0, 0, 0)
    assert not ActivityEvent.objects.exists() and not TrailFile.objects.exists()
    assert _waiting(queue) == 0  # its message is done with all the same


def test_a_corrupt_notified_file_is_quarantined_and_its_message_done(simulator, acme, queue) -> None:  # type: ignore[no-untyped-def]
    key = simulator.put(simulator.log_key(acme.partner.aws_account_id, timezone.now()), b"\x1f\x8b truncated")

    report = activity.activity_ingest_notified()

    assert report.quarantined == 1
    quarantined = QuarantinedObject.objects.get()
    assert (quarantined.key, quarantined.size) == (key, None)  # not listed: its size is not known
    assert _waiting(queue) == 0


def test_messages_name_only_trail_log_files() -> None:
    root = "AWSLogs/o-abc123/"
    name = "111122223333_CloudTrail_eu-west-1_20261128T1005Z_x.json.gz"
    log_key = f"{root}111122223333/CloudTrail/eu-west-1/2026/11/28/{name}"

    def s3_event(bucket: str, key: str, name: str = "ObjectCreated:Put") -> dict[str, Any]:
        # The key as S3 sends it: URL-encoded, a space as "+".
        encoded = key.replace(" ", "+").replace(":", "%3A")
        return {
            "Records": [{"eventName": name, "s3": {"bucket": {"name": bucket}, "object": {"key": encoded}}}]
        }

    assert notice(json.dumps(s3_event("trail", log_key)), bucket="trail", root=root) == ([log_key], 0)
    # Through SNS, and CloudTrail's own delivery notice.
    wrapped = {"Type": "Notification", "Message": json.dumps(s3_event("trail", log_key))}
    assert notice(json.dumps(wrapped), bucket="trail", root=root) == ([log_key], 0)
    delivered = {"s3Bucket": "trail", "s3ObjectKey": [log_key, log_key]}
    assert notice(json.dumps(delivered), bucket="trail", root=root) == ([log_key], 0)
    # Another bucket, outside the trail root, a climb out of it, a digest, a removal: nothing to read.
    for bucket, key in (
        ("other", log_key),
        ("trail", log_key.replace("AWSLogs/o-abc123/", "AWSLogs/o-other/")),
        ("trail", f"{root}../../secrets/x_CloudTrail_x.json.gz"),
        ("trail", log_key.replace("/CloudTrail/", "/CloudTrail-Digest/")),
    ):
        assert notice(json.dumps(s3_event(bucket, key)), bucket="trail", root=root) == ([], 1)
    removed = s3_event("trail", log_key, name="ObjectRemoved:Delete")
    assert notice(json.dumps(removed), bucket="trail", root=root) == ([], 0)
    # Not a notification at all (S3's test event on configuration, or anything else): dropped.
    for body in ('{"Event": "s3:TestEvent"}', "not json", "[]", '{"Type": "Notification", "Message": "x"}'):
        assert notice(body, bucket="trail", root=root) is None
    assert trail.is_log_file(log_key)


def test_beat_reads_the_queue_only_when_one_is_configured(
    simulator, acme, alice_cli, queue, settings
) -> None:  # type: ignore[no-untyped-def]
    from celery import Celery

    from activity import tasks
    from portal.celery import _schedule

    configured = Celery("configured")
    _schedule(configured)
    entry = configured.conf.beat_schedule["ingest-activity-notified"]
    assert entry["task"] == "activity.tasks.activity_ingest_notified" and entry["schedule"] == 10.0
    settings.ACTIVITY_SQS_QUEUE_URL = ""
    plain = Celery("plain")
    _schedule(plain)
    assert "ingest-activity-notified" not in plain.conf.beat_schedule
    settings.ACTIVITY_SQS_QUEUE_URL = queue

    records = simulator.session_records(alice_cli, mint=False, reads=2)
    simulator.write_log(acme.partner.aws_account_id, records, at=timezone.now())
    assert tasks.activity_ingest_notified()["events_inserted"] == len(records)
    # A queue that is gone: the run says so and stops (the bucket's notices wait on a queue that works).
    settings.ACTIVITY_SQS_QUEUE_URL = queue + "-gone"
    assert tasks.activity_ingest_notified() == {"skipped": True}
