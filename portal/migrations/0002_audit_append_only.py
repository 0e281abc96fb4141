from django.db import migrations

# On PostgreSQL the audit table refuses UPDATE and DELETE outright, whatever the application does.
TRIGGER = """
CREATE OR REPLACE FUNCTION porte_audit_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'portal_auditevent is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER porte_audit_append_only BEFORE UPDATE OR DELETE ON portal_auditevent
  FOR EACH ROW EXECUTE FUNCTION porte_audit_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS porte_audit_append_only ON portal_auditevent;
DROP FUNCTION IF EXISTS porte_audit_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TRIGGER)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("portal", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
