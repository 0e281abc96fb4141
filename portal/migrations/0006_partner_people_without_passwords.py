"""Partner people sign in through their IdP only: any password one of them set is made unusable (which also ends
their sessions and API tokens, both bound to the password field)."""

from django.contrib.auth.hashers import make_password
from django.db import migrations


def forget_partner_passwords(apps, schema_editor):
    User = apps.get_model("portal", "User")
    for user in User.objects.filter(is_staff=False).exclude(password__startswith="!").iterator():
        user.password = make_password(None)
        user.save(update_fields=["password"])


class Migration(migrations.Migration):
    dependencies = [("portal", "0005_health_samples")]

    operations = [migrations.RunPython(forget_partner_passwords, migrations.RunPython.noop)]
