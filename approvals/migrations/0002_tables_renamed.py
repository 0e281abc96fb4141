from django.db import migrations

from portal.model_moves import content_types_moved

MODELS = ["approval", "approvalpolicy", "breakglassreview", "rolechange"]


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        # grants_<model> becomes approvals_<model> (PostgreSQL keeps the data, indexes, constraints and foreign keys).
        migrations.AlterModelTable(name='approval', table=None),
        migrations.AlterModelTable(name='approvalpolicy', table=None),
        migrations.AlterModelTable(name='breakglassreview', table=None),
        migrations.AlterModelTable(name='rolechange', table=None),
        content_types_moved("grants", "approvals", MODELS),
    ]
