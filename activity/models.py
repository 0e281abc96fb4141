"""Activity tables: trail files as delivered, events (attributed to partner, person, grant and session), the
ingestion cursor, quarantined objects; and the alerts raised on the events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property

from activity.records import gunzip, parse_records


class TrailFile(models.Model):
    """One ingested log file, kept as delivered (gzipped): the full records of its events live here, not in each
    event row. A CloudTrail file compresses about 15 to 1, so this holds the records in a tenth of the space a
    per-event JSON column would, and keeps them byte for byte as AWS wrote them; and an event row without its
    record costs the database about half as much to insert (measured: bench/ingest_throughput.py)."""

    bucket = models.CharField(max_length=255)
    key = models.CharField(max_length=1024)
    content = models.BinaryField()
    size = models.PositiveBigIntegerField()
    events = models.PositiveIntegerField()
    # The retention purge drops a file once its newest event is past the retention (its events went first).
    newest_event_time = models.DateTimeField(null=True)
    ingested_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["bucket", "key"], name="trail_file_key_idx"),
            models.Index(fields=["newest_event_time"], name="trail_file_newest_idx"),
        ]

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def records(self) -> list[dict[str, Any]]:
        return parse_records(gunzip([bytes(self.content)]))


class IntReference(models.ForeignKey):
    """A reference stored in 4 bytes (PostgreSQL `integer`) where the row it points to has a `bigint` key: ids stay
    far below 2**31, and an events table of millions of rows saves 4 bytes per reference per row."""

    def db_type(self, connection: Any) -> str | None:
        return models.IntegerField().db_type(connection)


class ActivityAction(models.Model):
    """What an event did, shared by every event that did the same: the call (service and name), whether AWS counts
    it read-only, and how it ended (error code and message; both empty when it succeeded)."""

    id = models.AutoField(primary_key=True)  # 4 bytes in each event that references it
    event_source = models.CharField(max_length=128)
    event_name = models.CharField(max_length=128)
    read_only = models.BooleanField(null=True)
    error_code = models.CharField(max_length=128, blank=True)
    error_message = models.CharField(max_length=1024, blank=True)
    # A digest of the fields above (activity/interning.py): what makes two events' actions the same row.
    digest = models.CharField(max_length=32, unique=True)

    class Meta:
        indexes = [models.Index(fields=["event_source", "event_name"], name="activity_action_call_idx")]

    def __str__(self) -> str:
        return f"{self.event_source} {self.event_name}"


class ActivityContext(models.Model):
    """Who acted, from where, in which account and region, shared by every event with the same: a session's
    events all carry the same principal, access key, address and user agent, so these long strings are stored
    once per session and place rather than once per event. Also how the principal was attributed, beyond the
    partner, person and grant the event row itself carries for its indexes."""

    id = models.AutoField(primary_key=True)  # 4 bytes in each event that references it
    account_id = models.CharField(max_length=12, blank=True)  # recipientAccountId
    aws_region = models.CharField(max_length=32, blank=True)
    identity_type = models.CharField(max_length=32, blank=True)
    principal_arn = models.CharField(max_length=1024, blank=True)
    access_key_id = models.CharField(max_length=128, blank=True)
    source_ip = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    credential = IntReference(
        "grants.CredentialIssue",
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    # A session Porte minted for this partner's grant (matched by access key or by Porte's role session name).
    is_porte_session = models.BooleanField(default=False)
    # The record names two different people (its SourceIdentity and its access key or session name disagree):
    # attributed to neither person nor grant, flagged, and shown to staff only.
    attribution_conflict = models.BooleanField(default=False)
    digest = models.CharField(max_length=32, unique=True)

    class Meta:
        indexes = [
            # The alert rules read a principal's earlier refusals back (rules._new_bursts).
            models.Index(fields=["principal_arn"], name="activity_context_arn_idx"),
            models.Index(fields=["access_key_id"], name="activity_context_key_idx"),
        ]

    def __str__(self) -> str:
        return self.principal_arn or self.identity_type or f"context {self.pk}"


def hour_of(at: datetime) -> int:
    """The hour an event happened in, counted from the epoch (UTC): the activity indexes' time key."""
    return int(at.timestamp()) // 3600


class ActivityEvent(models.Model):
    """One CloudTrail event, attributed. Sized for millions of rows (bench/ingest_throughput.py measures bytes per
    event): what events share (the action, the context) is stored once in its own table and referenced here; the
    record itself is in its kept file (`record`); references are 4 bytes; and the indexes are keyed by the hour,
    so that PostgreSQL stores each key once for all of an hour's events (B-tree deduplication: ~6 bytes per event
    and index where a key by the exact time costs 40 to 75).

    Pages are read by keyset, newest first: ordered by (hour, event_time, event_id), each view's index gives the
    hours in order and the database sorts within an hour (see activity/selectors.py)."""

    # The key is (eventTime, eventID): CloudTrail's eventID (a GUID, stored as uuid: 16 bytes) makes it unique, and
    # an event delivered twice carries the same time, so ingestion stays idempotent. Led by the time, the key's
    # index grows at its end as events arrive, where an index on the eventID alone takes each insert to a random
    # page: past the memory the database has, every insert would read one (measured at 1,000,000 events: 19 % of
    # the database's work per insert, and growing with the table). The same index serves the detail page and the
    # retention purge.
    # The fields are in the order of the table's columns, widest first, so that no byte is lost to alignment.
    pk = models.CompositePrimaryKey("event_time", "event_id")
    event_time = models.DateTimeField()
    event_id = models.UUIDField()
    hour = models.IntegerField()  # hour_of(event_time)
    # The record as delivered: its file, and its index in the file's Records (a file is purged after its events).
    file = IntReference(
        TrailFile, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    position = models.PositiveIntegerField()
    # Who, attributed at ingestion. As for the audit log, history outlives what it mentions: these reference rows
    # without database constraints (a constraint check per reference per event is a good part of the cost of an
    # insert, and partners, users, grants and credential issues are never deleted anyway). The indexes below lead
    # with partner, user and grant, so Django's per-foreign-key index would only duplicate them.
    partner = IntReference(
        "partners.Partner",
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    user = IntReference(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    grant = IntReference(
        "grants.Grant",
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="activity",
    )
    context = models.ForeignKey(
        ActivityContext, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    action = models.ForeignKey(
        ActivityAction, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    # Activity in a partner's account by anything that is not a Porte-minted session (or whose attribution
    # conflicts).
    flagged = models.BooleanField(default=False)
    # The action's error code, here too for the partial indexes on errors (a few per cent of events; empty
    # otherwise, one byte).
    error_code = models.CharField(max_length=128, blank=True)

    class Meta:
        db_table = "activity_event"
        ordering = ["-hour", "-event_time", "-event_id"]
        indexes = [
            # All activity, for staff, is read through the key (activity/selectors.py: newest_first).
            models.Index(fields=["partner", "hour"], name="activity_event_partner_idx"),
            # Partial: events of other principals carry no person and stay out of it. A grant's events are read
            # through their holder's, over the grant's time (selectors.grant_events): an index per grant would cost
            # every insert as much again.
            models.Index(
                fields=["user", "hour"], name="activity_event_user_idx", condition=Q(user__isnull=False)
            ),
            # The filters by service, call and kind (read or write), which name actions: a partner's, in order; for
            # staff (no partner to narrow by), a rare action's few events directly.
            models.Index(fields=["action", "partner", "hour"], name="activity_event_action_idx"),
            # Errors are a few per cent of events: small partial indexes for the errors view and its counts, and
            # for refused calls by time (metrics, the burst rule).
            models.Index(
                fields=["partner", "error_code"],
                name="activity_event_partner_err_idx",
                condition=~Q(error_code=""),
            ),
            models.Index(
                fields=["partner", "hour"], name="activity_event_errhour_idx", condition=~Q(error_code="")
            ),
            models.Index(
                fields=["hour", "error_code"], name="activity_event_errtime_idx", condition=~Q(error_code="")
            ),
            models.Index(fields=["hour"], name="activity_event_flagged_idx", condition=Q(flagged=True)),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(flagged=False) | Q(partner__isnull=False),
                name="activity_event_flagged_in_partner_account",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_time:%Y-%m-%d %H:%M:%S} {self.event_source} {self.event_name}"

    def get_absolute_url(self) -> str:
        return reverse("activity_detail", kwargs={"at": self.event_time, "event_id": self.event_id})

    # What the event shares with others, read through its action and context. Pages load those in bulk
    # (activity/rows.py), so these cost no query there.
    @property
    def event_source(self) -> str:
        return self.action.event_source

    @property
    def event_name(self) -> str:
        return self.action.event_name

    @property
    def read_only(self) -> bool | None:
        return self.action.read_only

    @property
    def error_message(self) -> str:
        return self.action.error_message

    @property
    def account_id(self) -> str:
        return self.context.account_id

    @property
    def aws_region(self) -> str:
        return self.context.aws_region

    @property
    def identity_type(self) -> str:
        return self.context.identity_type

    @property
    def principal_arn(self) -> str:
        return self.context.principal_arn

    @property
    def access_key_id(self) -> str:
        return self.context.access_key_id

    @property
    def source_ip(self) -> str:
        return self.context.source_ip

    @property
    def user_agent(self) -> str:
        return self.context.user_agent

    @property
    def is_porte_session(self) -> bool:
        return self.context.is_porte_session

    @property
    def attribution_conflict(self) -> bool:
        return self.context.attribution_conflict

    @property
    def credential_id(self) -> int | None:
        return self.context.credential_id

    @property
    def credential(self) -> models.Model | None:  # a grants.CredentialIssue
        return self.context.credential

    @cached_property
    def record(self) -> dict[str, Any] | None:
        """The full CloudTrail record (for the detail page): read from its file, None if the file is gone."""
        file = TrailFile.objects.filter(pk=self.file_id).first()
        return file.records()[self.position] if file is not None else None


class TrailCursor(models.Model):
    """Where ingestion is in one prefix of the trail bucket (one account and region of the organisation trail).

    Listing resumes a little before `last_key` (the lookback, by the timestamp in CloudTrail's file names) so a
    file delivered late with an earlier name is still found; `recent_keys` are the files already ingested in that
    window, skipped when listed again. `version` makes every advance a compare-and-set, so two ingestion runs
    never both move the same cursor.
    """

    bucket = models.CharField(max_length=255)
    prefix = models.CharField(max_length=1024)
    last_key = models.CharField(max_length=1024, blank=True)
    recent_keys = models.JSONField(default=list, blank=True)
    version = models.PositiveBigIntegerField(default=0)
    # Evidence of progress (activity/progress.py): the last listing of the prefix that succeeded (even if it found
    # nothing new), the delivery time of the newest log file handled, objects that are not log files (recorded as
    # such, never moving the cursor), and since when a run has left objects behind for the next one.
    listed_at = models.DateTimeField(null=True, blank=True)
    newest_log_at = models.DateTimeField(null=True, blank=True)
    not_log_files = models.PositiveIntegerField(default=0)
    backlog_since = models.DateTimeField(null=True, blank=True)
    objects_ingested = models.PositiveBigIntegerField(default=0)
    events_inserted = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["bucket", "prefix"], name="trail_cursor_unique_prefix")
        ]

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix} at {self.last_key.rsplit('/', 1)[-1] or '(start)'}"


class QuarantinedObject(models.Model):
    """A trail object ingestion moved past without (all of) its events, and why: it could not be read (corrupt
    gzip, truncated or malformed JSON, not the record format), it is not a log file at all (a stray upload in a
    log folder), or some of its records were refused (the others were ingested). Staff see the error here, and
    retry it or mark it resolved."""

    class Reason(models.TextChoices):
        UNREADABLE = "unreadable", "Unreadable log file"
        NOT_A_LOG_FILE = "not_a_log_file", "Not a log file"
        BAD_RECORDS = "bad_records", "Records refused"

    bucket = models.CharField(max_length=255)
    key = models.CharField(max_length=1024)
    error = models.TextField()
    reason = models.CharField(max_length=16, choices=Reason.choices, default=Reason.UNREADABLE)
    # BAD_RECORDS: how many of the file's records were refused (the error lists the first few, by position).
    records_refused = models.PositiveIntegerField(default=0)
    size = models.PositiveBigIntegerField(null=True, blank=True)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=1)
    resolved = models.BooleanField(default=False)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-first_seen"]
        constraints = [models.UniqueConstraint(fields=["bucket", "key"], name="quarantined_object_unique")]
        indexes = [
            models.Index(fields=["-first_seen"], name="quarantine_open_idx", condition=Q(resolved=False)),
        ]

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


# --- alerts: detection on the ingested events (activity/alerts) ---------------------------------------------


class Alert(models.Model):
    """Something in the activity that staff must look at. One alert per incident, not per event: repeated events
    of the same incident (a burst, the same grant outside its window the same day) add to its count."""

    class Rule(models.TextChoices):
        DENIED_BURST = "denied_burst", "Burst of refused calls"
        OUTSIDE_WINDOW = "outside_window", "Activity outside the access window"
        SENSITIVE_ACTION = "sensitive_action", "Sensitive action"
        AFTER_GRANT_END = "after_grant_end", "Credentials used after their grant ended"
        NEW_SOURCE_IP = "new_source_ip", "New source IP for a user"
        # Not a finding about a partner: a prefix of the trail stopped being read (activity/progress.py).
        INGESTION_STALLED = "ingestion_stalled", "Activity ingestion stalled"
        # Not a finding: the rules themselves failed on some events, which were stored but not judged.
        RULES_FAILED = "rules_failed", "Alert rules failed"

    class Severity(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"
        CRITICAL = "critical", "Critical"

    rule = models.CharField(max_length=32, choices=Rule.choices)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    # What makes two detections the same incident (so a re-ingested file, or two ingestion runs, add no alert).
    dedupe_key = models.CharField(max_length=255, unique=True)
    # Who: the principal as the rule keyed it (a Porte user, or an ARN), and what it maps to in Porte.
    principal = models.CharField(max_length=1024, blank=True)
    partner = models.ForeignKey(
        "partners.Partner", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    grant = models.ForeignKey(
        "grants.Grant", null=True, blank=True, on_delete=models.PROTECT, related_name="alerts"
    )
    summary = models.CharField(max_length=500)
    event_count = models.PositiveIntegerField(default=0)
    # A sample of the events (their ids), not all of them: a burst can be thousands.
    event_ids = models.JSONField(default=list, blank=True)
    first_event_at = models.DateTimeField()
    last_event_at = models.DateTimeField()
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    acknowledgement_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at"], name="alert_created_idx"),
            models.Index(
                fields=["-created_at"], name="alert_open_idx", condition=Q(acknowledged_at__isnull=True)
            ),
            # The burst rule finds the burst a new refused call continues.
            models.Index(fields=["rule", "principal", "last_event_at"], name="alert_rule_principal_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(acknowledged_at__isnull=True) | Q(acknowledged_by__isnull=False),
                name="alert_acknowledged_by_someone",
            ),
        ]

    def __str__(self) -> str:
        return f"[{self.severity}] {self.summary}"

    @property
    def is_open(self) -> bool:
        return self.acknowledged_at is None


class SeenSourceIp(models.Model):
    """The source IPs each Porte user has acted from (in CloudTrail): the baseline of the new-IP rule."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    ip = models.CharField(max_length=64)
    first_seen = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "ip"], name="seen_ip_unique_per_user")]

    def __str__(self) -> str:
        return f"{self.ip} for user {self.user_id}"
