"""Activity events keyed by (event_time, event_id) instead of event_id alone (see ActivityEvent).

Django does not migrate a table to a composite primary key by itself: the model's state changes here, and the table
is changed by hand — on PostgreSQL by swapping the primary key constraint (the old time index is now the key's), on
SQLite (the embedded database of `make run`) by rebuilding the table, rows kept.
"""

from django.db import migrations, models

TABLE = "grants_activityevent"


def _forwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT {TABLE}_pkey")
        schema_editor.execute(f"ALTER TABLE {TABLE} ADD PRIMARY KEY (event_time, event_id)")
        schema_editor.execute("DROP INDEX IF EXISTS activity_time_idx")
    else:
        # Django's own table rebuild (what SQLite needs for any change of constraints), from the new state.
        schema_editor._remake_table(apps.get_model("grants", "ActivityEvent"))


def _backwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT {TABLE}_pkey")
        schema_editor.execute(f"ALTER TABLE {TABLE} ADD PRIMARY KEY (event_id)")
        schema_editor.execute(f"CREATE INDEX activity_time_idx ON {TABLE} (event_time, event_id)")


class Migration(migrations.Migration):
    dependencies = [
        ("grants", "0009_alerts"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="activityevent", name="activity_time_idx"),
                migrations.AddField(
                    model_name="activityevent",
                    name="pk",
                    field=models.CompositePrimaryKey(
                        "event_time", "event_id", blank=True, editable=False, primary_key=True, serialize=False
                    ),
                ),
                migrations.AlterField(model_name="activityevent", name="event_id", field=models.UUIDField()),
            ],
        ),
        migrations.RunPython(_forwards, _backwards),
    ]
