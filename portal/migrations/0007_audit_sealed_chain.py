"""The audit chain is sealed after commit instead of under a global lock at insert time.

Events already in the log were chained in id order under that lock: their place in the chain (seq) is their rank
in id order (ids have gaps where a transaction rolled back; places must not).
The append-only trigger now lets exactly one update through: the sealer's, which gives an unsealed event its
seq, prev_hash and hash and changes nothing else. Sealed events stay immutable; DELETE is refused as before.
"""

from django.db import migrations, models

TRIGGER = """
CREATE OR REPLACE FUNCTION porte_audit_append_only() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND OLD.hash IS NULL AND OLD.prev_hash = ''
     AND NEW.seq IS NOT NULL AND NEW.hash IS NOT NULL AND NEW.prev_hash <> ''
     AND (NEW.id, NEW.at, NEW.actor_id, NEW.action, NEW.object_type, NEW.object_id, NEW.partner_id, NEW.data)
         IS NOT DISTINCT FROM
         (OLD.id, OLD.at, OLD.actor_id, OLD.action, OLD.object_type, OLD.object_id, OLD.partner_id, OLD.data)
  THEN
    RETURN NEW;  -- sealing an event: its place and hash, nothing else
  END IF;
  RAISE EXCEPTION 'portal_auditevent is append-only';
END;
$$ LANGUAGE plpgsql;
"""
OLD_TRIGGER = """
CREATE OR REPLACE FUNCTION porte_audit_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'portal_auditevent is append-only';
END;
$$ LANGUAGE plpgsql;
"""
GUARD = "ALTER TABLE portal_auditevent {} TRIGGER porte_audit_append_only"
PLACES = """
UPDATE portal_auditevent SET seq = ranked.place
FROM (SELECT id, row_number() OVER (ORDER BY id) AS place FROM portal_auditevent) AS ranked
WHERE portal_auditevent.id = ranked.id
"""


def forwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(GUARD.format("DISABLE"))
        schema_editor.execute(PLACES)
        schema_editor.execute(GUARD.format("ENABLE"))
        schema_editor.execute(TRIGGER)
    else:
        schema_editor.execute(PLACES)


def backwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(OLD_TRIGGER)


class Migration(migrations.Migration):

    dependencies = [
        ('portal', '0006_partner_people_without_passwords'),
    ]

    operations = [
        migrations.AddField(
            model_name='auditevent',
            name='seq',
            field=models.BigIntegerField(blank=True, null=True, unique=True),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='hash',
            field=models.CharField(blank=True, max_length=64, null=True, unique=True),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='prev_hash',
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AddIndex(
            model_name='auditevent',
            index=models.Index(condition=models.Q(('seq__isnull', True)), fields=['id'], name='portal_audit_unsealed'),
        ),
        migrations.RunPython(forwards, backwards),
    ]
