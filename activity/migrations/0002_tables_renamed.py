from django.db import migrations

from portal.model_moves import content_types_moved

MODELS = ["trailcursor", "trailfile", "alert", "quarantinedobject", "seensourceip", "activityevent"]


class Migration(migrations.Migration):
    dependencies = [
        ("activity", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        # grants_<model> becomes activity_<model> (PostgreSQL keeps the data, indexes, constraints and foreign keys).
        migrations.AlterModelTable(name='trailcursor', table=None),
        migrations.AlterModelTable(name='trailfile', table=None),
        migrations.AlterModelTable(name='alert', table=None),
        migrations.AlterModelTable(name='quarantinedobject', table=None),
        migrations.AlterModelTable(name='seensourceip', table=None),
        migrations.AlterModelTable(name='activityevent', table=None),
        content_types_moved("grants", "activity", MODELS),
    ]
