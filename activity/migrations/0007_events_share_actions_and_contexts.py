"""Events share what they have in common: each distinct action (call, kind, outcome) and context (who, from where,
in which account and region) is stored once, and the events table is rebuilt narrow, its indexes keyed by the hour
(see ActivityEvent).

The new table (`activity_event`) is created with its columns in the order that wastes no byte to alignment,
partitioned by month on PostgreSQL (a default partition, and a partition per month from the oldest event to two
months ahead, as 0004 did); the actions and contexts of the stored events are written; the events are copied over,
referencing them; the old table is dropped.
"""

import hashlib
from datetime import UTC, datetime, timedelta

import django.db.models.deletion
import orjson
from django.conf import settings
from django.db import migrations, models
from django.db.migrations.operations.base import Operation

import activity.models

OLD = "activity_activityevent"
COLUMNS = (
    "event_time",
    "event_id",
    "hour",
    "file",
    "position",
    "partner",
    "user",
    "grant",
    "context",
    "action",
    "flagged",
    "error_code",
)
ACTION = ("event_source", "event_name", "read_only", "error_code", "error_message")
CONTEXT = (
    "account_id",
    "aws_region",
    "identity_type",
    "principal_arn",
    "access_key_id",
    "source_ip",
    "user_agent",
    "credential_id",
    "is_porte_session",
    "attribution_conflict",
)


BOOLEANS = {"read_only", "is_porte_session", "attribution_conflict"}


def _digest(names, row):
    # As activity.interning.digest does (an action or context digested otherwise would only be stored twice), with
    # booleans as booleans (SQLite gives them as integers).
    key = [bool(v) if n in BOOLEANS and v is not None else v for n, v in zip(names, row, strict=True)]
    return hashlib.blake2b(orjson.dumps(key), digest_size=16).hexdigest()


def _month(at):
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def _next(month):
    return (month + timedelta(days=32)).replace(day=1)


class RebuildEvents(Operation):
    """The events model becomes what `state_operations` make it; its table is rebuilt (see the module)."""

    reversible = True

    def __init__(self, state_operations):
        self.state_operations = state_operations

    def deconstruct(self):
        return (self.__class__.__name__, [], {"state_operations": self.state_operations})

    def describe(self):
        return "Rebuild the activity events table"

    def state_forwards(self, app_label, state):
        for operation in self.state_operations:
            operation.state_forwards(app_label, state)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, "ActivityEvent")
        action = to_state.apps.get_model(app_label, "ActivityAction")
        context = to_state.apps.get_model(app_label, "ActivityContext")
        connection = schema_editor.connection
        postgresql = connection.vendor == "postgresql"
        quote = connection.ops.quote_name
        table = model._meta.db_table
        fields = {field.name: field for field in model._meta.local_concrete_fields}
        definitions = []
        for name in COLUMNS:
            sql, params = schema_editor.column_sql(model, fields[name])
            assert not params
            definitions.append(f"{quote(fields[name].column)} {sql}")
        definitions.append("PRIMARY KEY (event_time, event_id)")
        partitioned = " PARTITION BY RANGE (event_time)" if postgresql else ""
        schema_editor.execute(f"CREATE TABLE {quote(table)} ({', '.join(definitions)}){partitioned}")
        for index in model._meta.indexes:
            schema_editor.add_index(model, index)
        for constraint in model._meta.constraints:
            schema_editor.add_constraint(model, constraint)
        with connection.cursor() as cursor:
            if postgresql:
                cursor.execute(
                    f"CREATE TABLE {quote(table + '_default')} PARTITION OF {quote(table)} DEFAULT"
                )
                cursor.execute(f"SELECT min(event_time) FROM {quote(OLD)}")  # noqa: S608
                oldest = cursor.fetchone()[0]
                now = datetime.now(UTC)
                month, last = _month(min(oldest, now) if oldest else now), _next(_next(_month(now)))
                while month <= last:
                    cursor.execute(
                        f"CREATE TABLE {quote(f'{table}_{month:%Y%m}')} PARTITION OF {quote(table)} "
                        f"FOR VALUES FROM ('{month.isoformat()}') TO ('{_next(month).isoformat()}')"
                    )
                    month = _next(month)
                # As activity.partitions does for each month made later: the planner knows every action's share.
                cursor.execute(f"ALTER TABLE {quote(table)} ALTER COLUMN action_id SET STATISTICS 1000")
            for shared, names in ((action, ACTION), (context, CONTEXT)):
                columns = ", ".join(quote(name) for name in names)
                cursor.execute(f"SELECT DISTINCT {columns} FROM {quote(OLD)}")  # noqa: S608
                rows = [(*row, _digest(names, row)) for row in cursor.fetchall()]
                if rows:
                    placeholders = ", ".join(["%s"] * (len(names) + 1))
                    cursor.executemany(
                        f"INSERT INTO {quote(shared._meta.db_table)} ({columns}, digest) "  # noqa: S608
                        f"VALUES ({placeholders})",
                        rows,
                    )
            same = "IS NOT DISTINCT FROM" if postgresql else "IS"
            hour = (
                "floor(extract(epoch FROM o.event_time) / 3600)::integer"
                if postgresql
                else "CAST(strftime('%s', o.event_time) AS INTEGER) / 3600"
            )
            joins = " ".join(
                f"JOIN {quote(shared._meta.db_table)} {alias} ON "
                + " AND ".join(f"{alias}.{quote(n)} {same} o.{quote(n)}" for n in names)
                for shared, alias, names in ((action, "a", ACTION), (context, "c", CONTEXT))
            )
            target = ", ".join(quote(fields[name].column) for name in COLUMNS)
            cursor.execute(
                f"INSERT INTO {quote(table)} ({target}) "  # noqa: S608
                f"SELECT o.event_time, o.event_id, {hour}, o.file_id, o.position, o.partner_id, o.user_id, "
                f"o.grant_id, c.id, a.id, o.flagged, o.error_code FROM {quote(OLD)} o {joins}"
            )
        schema_editor.execute(f"DROP TABLE {quote(OLD)}")

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        """The wide table again (unpartitioned: 0004 partitions it when migrating forward), the events copied
        back with their actions' and contexts' fields."""
        new = from_state.apps.get_model(app_label, "ActivityEvent")
        old = to_state.apps.get_model(app_label, "ActivityEvent")
        quote = schema_editor.connection.ops.quote_name
        schema_editor.create_model(old)
        own = {field.column for field in new._meta.local_concrete_fields}
        columns, values = [], []
        for field in old._meta.local_concrete_fields:
            columns.append(quote(field.column))
            alias = "e" if field.column in own else "a" if field.column in ACTION else "c"
            values.append(f"{alias}.{quote(field.column)}")
        action = from_state.apps.get_model(app_label, "ActivityAction")._meta.db_table
        context = from_state.apps.get_model(app_label, "ActivityContext")._meta.db_table
        schema_editor.execute(
            f"INSERT INTO {quote(OLD)} ({', '.join(columns)}) SELECT {', '.join(values)} "  # noqa: S608
            f"FROM {quote(new._meta.db_table)} e JOIN {quote(action)} a ON a.id = e.action_id "
            f"JOIN {quote(context)} c ON c.id = e.context_id"
        )
        schema_editor.execute(f"DROP TABLE {quote(new._meta.db_table)}")


class Migration(migrations.Migration):
    dependencies = [
        ("activity", "0006_index_by_service_first"),
        ("grants", "0013_models_move_to_their_apps"),
        ("partners", "0008_account_creation_claim"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ActivityAction",
            fields=[
                ("id", models.AutoField(primary_key=True, serialize=False)),
                ("event_source", models.CharField(max_length=128)),
                ("event_name", models.CharField(max_length=128)),
                ("read_only", models.BooleanField(null=True)),
                ("error_code", models.CharField(blank=True, max_length=128)),
                ("error_message", models.CharField(blank=True, max_length=1024)),
                ("digest", models.CharField(max_length=32, unique=True)),
            ],
        ),
        migrations.CreateModel(
            name="ActivityContext",
            fields=[
                ("id", models.AutoField(primary_key=True, serialize=False)),
                ("account_id", models.CharField(blank=True, max_length=12)),
                ("aws_region", models.CharField(blank=True, max_length=32)),
                ("identity_type", models.CharField(blank=True, max_length=32)),
                ("principal_arn", models.CharField(blank=True, max_length=1024)),
                ("access_key_id", models.CharField(blank=True, max_length=128)),
                ("source_ip", models.CharField(blank=True, max_length=64)),
                ("user_agent", models.CharField(blank=True, max_length=512)),
                ("is_porte_session", models.BooleanField(default=False)),
                ("attribution_conflict", models.BooleanField(default=False)),
                ("digest", models.CharField(max_length=32, unique=True)),
            ],
        ),
        migrations.AddIndex(
            model_name="activityaction",
            index=models.Index(fields=["event_source", "event_name"], name="activity_action_call_idx"),
        ),
        migrations.AddField(
            model_name="activitycontext",
            name="credential",
            field=activity.models.IntReference(
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="grants.credentialissue",
            ),
        ),
        migrations.AddIndex(
            model_name="activitycontext",
            index=models.Index(fields=["principal_arn"], name="activity_context_arn_idx"),
        ),
        migrations.AddIndex(
            model_name="activitycontext",
            index=models.Index(fields=["access_key_id"], name="activity_context_key_idx"),
        ),
        RebuildEvents(
            state_operations=[
                migrations.AlterModelOptions(
                    name="activityevent",
                    options={"ordering": ["-hour", "-event_time", "-event_id"]},
                ),
                migrations.RemoveConstraint(
                    model_name="activityevent",
                    name="activity_flagged_in_partner_account",
                ),
                migrations.RemoveIndex(
                    model_name="activityevent",
                    name="activity_partner_time_idx",
                ),
                migrations.RemoveIndex(
                    model_name="activityevent",
                    name="activity_user_time_idx",
                ),
                migrations.RemoveIndex(
                    model_name="activityevent",
                    name="activity_grant_time_idx",
                ),
                migrations.RemoveIndex(
                    model_name="activityevent",
                    name="activity_partner_errtime_idx",
                ),
                migrations.RemoveIndex(
                    model_name="activityevent",
                    name="activity_flagged_idx",
                ),
                migrations.RemoveIndex(
                    model_name="activityevent",
                    name="activity_name_time_idx",
                ),
                migrations.RemoveIndex(
                    model_name="activityevent",
                    name="activity_source_partner_idx",
                ),
                migrations.RenameIndex(
                    model_name="activityevent",
                    new_name="activity_event_partner_err_idx",
                    old_name="activity_partner_error_idx",
                ),
                migrations.RemoveIndex(
                    model_name="activityevent",
                    name="activity_error_time_idx",
                ),
                migrations.RemoveField(
                    model_name="activityevent",
                    name="access_key_id",
                ),
                migrations.RemoveField(
                    model_name="activityevent",
                    name="account_id",
                ),
                migrations.RemoveField(
                    model_name="activityevent",
                    name="attribution_conflict",
                ),
                migrations.RemoveField(
                    model_name="activityevent",
                    name="aws_region",
                ),
                migrations.RemoveField(
                    model_name="activityevent",
                    name="credential",
                ),
                migrations.RemoveField(
                    model_name="activityevent",
                    name="error_message",
                ),
                migrations.RemoveField(
                    model_name="activityevent",
                    name="event_name",
                ),
                migrations.RemoveField(
                    model_name="activityevent",
                    name="event_source",
                ),
                migrations.RemoveField(
                    model_name="activityevent",
                    name="identity_type",
                ),
                migrations.RemoveField(
                    model_name="activityevent",
                    name="is_porte_session",
                ),
                migrations.RemoveField(
                    model_name="activityevent",
                    name="principal_arn",
                ),
                migrations.RemoveField(
                    model_name="activityevent",
                    name="read_only",
                ),
                migrations.RemoveField(
                    model_name="activityevent",
                    name="source_ip",
                ),
                migrations.RemoveField(
                    model_name="activityevent",
                    name="user_agent",
                ),
                migrations.AddField(
                    model_name="activityevent",
                    name="hour",
                    field=models.IntegerField(default=0),
                    preserve_default=False,
                ),
                migrations.AlterField(
                    model_name="activityevent",
                    name="file",
                    field=activity.models.IntReference(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="activity.trailfile",
                    ),
                ),
                migrations.AlterField(
                    model_name="activityevent",
                    name="grant",
                    field=activity.models.IntReference(
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="activity",
                        to="grants.grant",
                    ),
                ),
                migrations.AlterField(
                    model_name="activityevent",
                    name="partner",
                    field=activity.models.IntReference(
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="partners.partner",
                    ),
                ),
                migrations.AlterField(
                    model_name="activityevent",
                    name="user",
                    field=activity.models.IntReference(
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterModelTable(
                    name="activityevent",
                    table="activity_event",
                ),
                migrations.AddField(
                    model_name="activityevent",
                    name="action",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        default=0,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="activity.activityaction",
                    ),
                    preserve_default=False,
                ),
                migrations.AddField(
                    model_name="activityevent",
                    name="context",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        default=0,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="activity.activitycontext",
                    ),
                    preserve_default=False,
                ),
                migrations.AddIndex(
                    model_name="activityevent",
                    index=models.Index(fields=["hour"], name="activity_event_hour_idx"),
                ),
                migrations.AddIndex(
                    model_name="activityevent",
                    index=models.Index(fields=["partner", "hour"], name="activity_event_partner_idx"),
                ),
                migrations.AddIndex(
                    model_name="activityevent",
                    index=models.Index(
                        condition=models.Q(("user__isnull", False)),
                        fields=["user", "hour"],
                        name="activity_event_user_idx",
                    ),
                ),
                migrations.AddIndex(
                    model_name="activityevent",
                    index=models.Index(
                        fields=["action", "partner", "hour"], name="activity_event_action_idx"
                    ),
                ),
                migrations.AddIndex(
                    model_name="activityevent",
                    index=models.Index(
                        condition=models.Q(("error_code", ""), _negated=True),
                        fields=["hour", "error_code"],
                        name="activity_event_errtime_idx",
                    ),
                ),
                migrations.AddIndex(
                    model_name="activityevent",
                    index=models.Index(
                        condition=models.Q(("error_code", ""), _negated=True),
                        fields=["partner", "hour"],
                        name="activity_event_errhour_idx",
                    ),
                ),
                migrations.AddIndex(
                    model_name="activityevent",
                    index=models.Index(
                        condition=models.Q(("flagged", True)),
                        fields=["hour"],
                        name="activity_event_flagged_idx",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="activityevent",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("flagged", False), ("partner__isnull", False), _connector="OR"),
                        name="activity_event_flagged_in_partner_account",
                    ),
                ),
            ],
        ),
    ]
