from django.db import migrations

from portal.model_moves import content_types_moved

MODELS = ["reviewcampaign", "reviewitem", "reviewsettings"]


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        # grants_<model> becomes reviews_<model> (PostgreSQL keeps the data, indexes, constraints and foreign keys).
        migrations.AlterModelTable(name='reviewcampaign', table=None),
        migrations.AlterModelTable(name='reviewitem', table=None),
        migrations.AlterModelTable(name='reviewsettings', table=None),
        content_types_moved("grants", "reviews", MODELS),
    ]
