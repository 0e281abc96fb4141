import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('grants', '0013_models_move_to_their_apps'),
        ('partners', '0008_account_creation_claim'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Taken over from the grants app: Django's state only, the tables (still grants_*) are already there.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='TrailCursor',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('bucket', models.CharField(max_length=255)),
                        ('prefix', models.CharField(max_length=1024)),
                        ('last_key', models.CharField(blank=True, max_length=1024)),
                        ('recent_keys', models.JSONField(blank=True, default=list)),
                        ('version', models.PositiveBigIntegerField(default=0)),
                        ('objects_ingested', models.PositiveBigIntegerField(default=0)),
                        ('events_inserted', models.PositiveBigIntegerField(default=0)),
                        ('updated_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ],
                    options={
                        'db_table': 'grants_trailcursor',
                        'constraints': [models.UniqueConstraint(fields=('bucket', 'prefix'), name='trail_cursor_unique_prefix')],
                    },
                ),
                migrations.CreateModel(
                    name='TrailFile',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('bucket', models.CharField(max_length=255)),
                        ('key', models.CharField(max_length=1024)),
                        ('content', models.BinaryField()),
                        ('size', models.PositiveBigIntegerField()),
                        ('events', models.PositiveIntegerField()),
                        ('newest_event_time', models.DateTimeField(null=True)),
                        ('ingested_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ],
                    options={
                        'db_table': 'grants_trailfile',
                        'indexes': [models.Index(fields=['bucket', 'key'], name='trail_file_key_idx'), models.Index(fields=['newest_event_time'], name='trail_file_newest_idx')],
                    },
                ),
                migrations.CreateModel(
                    name='Alert',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('rule', models.CharField(choices=[('denied_burst', 'Burst of refused calls'), ('outside_window', 'Activity outside the access window'), ('sensitive_action', 'Sensitive action'), ('after_grant_end', 'Credentials used after their grant ended'), ('new_source_ip', 'New source IP for a user'), ('rules_failed', 'Alert rules failed')], max_length=32)),
                        ('severity', models.CharField(choices=[('low', 'Low'), ('medium', 'Medium'), ('high', 'High'), ('critical', 'Critical')], max_length=16)),
                        ('dedupe_key', models.CharField(max_length=255, unique=True)),
                        ('principal', models.CharField(blank=True, max_length=1024)),
                        ('summary', models.CharField(max_length=500)),
                        ('event_count', models.PositiveIntegerField(default=0)),
                        ('event_ids', models.JSONField(blank=True, default=list)),
                        ('first_event_at', models.DateTimeField()),
                        ('last_event_at', models.DateTimeField()),
                        ('detail', models.JSONField(blank=True, default=dict)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('updated_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('acknowledged_at', models.DateTimeField(blank=True, null=True)),
                        ('acknowledgement_note', models.TextField(blank=True)),
                        ('acknowledged_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('grant', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='alerts', to='grants.grant')),
                        ('partner', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='partners.partner')),
                        ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'grants_alert',
                        'ordering': ['-created_at', '-id'],
                        'indexes': [models.Index(fields=['-created_at'], name='alert_created_idx'), models.Index(condition=models.Q(('acknowledged_at__isnull', True)), fields=['-created_at'], name='alert_open_idx'), models.Index(fields=['rule', 'principal', 'last_event_at'], name='alert_rule_principal_idx')],
                        'constraints': [models.CheckConstraint(condition=models.Q(('acknowledged_at__isnull', True), ('acknowledged_by__isnull', False), _connector='OR'), name='alert_acknowledged_by_someone')],
                    },
                ),
                migrations.CreateModel(
                    name='QuarantinedObject',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('bucket', models.CharField(max_length=255)),
                        ('key', models.CharField(max_length=1024)),
                        ('error', models.TextField()),
                        ('size', models.PositiveBigIntegerField(blank=True, null=True)),
                        ('first_seen', models.DateTimeField(default=django.utils.timezone.now)),
                        ('last_seen', models.DateTimeField(default=django.utils.timezone.now)),
                        ('attempts', models.PositiveIntegerField(default=1)),
                        ('resolved', models.BooleanField(default=False)),
                        ('resolved_at', models.DateTimeField(blank=True, null=True)),
                        ('resolved_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'grants_quarantinedobject',
                        'ordering': ['-first_seen'],
                        'indexes': [models.Index(condition=models.Q(('resolved', False)), fields=['-first_seen'], name='quarantine_open_idx')],
                        'constraints': [models.UniqueConstraint(fields=('bucket', 'key'), name='quarantined_object_unique')],
                    },
                ),
                migrations.CreateModel(
                    name='SeenSourceIp',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('ip', models.CharField(max_length=64)),
                        ('first_seen', models.DateTimeField()),
                        ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'grants_seensourceip',
                        'constraints': [models.UniqueConstraint(fields=('user', 'ip'), name='seen_ip_unique_per_user')],
                    },
                ),
                migrations.CreateModel(
                    name='ActivityEvent',
                    fields=[
                        ('pk', models.CompositePrimaryKey('event_time', 'event_id', blank=True, editable=False, primary_key=True, serialize=False)),
                        ('event_time', models.DateTimeField()),
                        ('event_id', models.UUIDField()),
                        ('event_source', models.CharField(max_length=128)),
                        ('event_name', models.CharField(max_length=128)),
                        ('event_type', models.CharField(blank=True, max_length=32)),
                        ('aws_region', models.CharField(blank=True, max_length=32)),
                        ('account_id', models.CharField(blank=True, max_length=12)),
                        ('identity_type', models.CharField(blank=True, max_length=32)),
                        ('principal_arn', models.CharField(blank=True, max_length=1024)),
                        ('access_key_id', models.CharField(blank=True, max_length=128)),
                        ('source_identity', models.CharField(blank=True, max_length=64)),
                        ('source_ip', models.CharField(blank=True, max_length=64)),
                        ('user_agent', models.CharField(blank=True, max_length=512)),
                        ('error_code', models.CharField(blank=True, max_length=128)),
                        ('error_message', models.CharField(blank=True, max_length=1024)),
                        ('read_only', models.BooleanField(null=True)),
                        ('is_porte_session', models.BooleanField(default=False)),
                        ('flagged', models.BooleanField(default=False)),
                        ('position', models.PositiveIntegerField()),
                        ('credential', models.ForeignKey(db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='activity', to='grants.credentialissue')),
                        ('grant', models.ForeignKey(db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='activity', to='grants.grant')),
                        ('partner', models.ForeignKey(db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='partners.partner')),
                        ('user', models.ForeignKey(db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('file', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='activity.trailfile')),
                    ],
                    options={
                        'db_table': 'grants_activityevent',
                        'ordering': ['-event_time', '-event_id'],
                        'indexes': [models.Index(fields=['partner', '-event_time', '-event_id'], name='activity_partner_time_idx'), models.Index(condition=models.Q(('user__isnull', False)), fields=['user', '-event_time', '-event_id'], name='activity_user_time_idx'), models.Index(condition=models.Q(('grant__isnull', False)), fields=['grant', '-event_time', '-event_id'], name='activity_grant_time_idx'), models.Index(fields=['partner', 'event_source', 'event_time'], name='activity_partner_source_idx'), models.Index(condition=models.Q(('error_code', ''), _negated=True), fields=['partner', 'error_code'], name='activity_partner_error_idx'), models.Index(condition=models.Q(('error_code', ''), _negated=True), fields=['partner', '-event_time', '-event_id'], name='activity_partner_errtime_idx'), models.Index(condition=models.Q(('flagged', True)), fields=['-event_time', '-event_id'], name='activity_flagged_idx'), models.Index(fields=['event_name', '-event_time', '-event_id'], name='activity_name_time_idx'), models.Index(condition=models.Q(('error_code', ''), _negated=True), fields=['event_time', 'error_code'], name='activity_error_time_idx')],
                        'constraints': [models.CheckConstraint(condition=models.Q(('flagged', False), ('partner__isnull', False), _connector='OR'), name='activity_flagged_in_partner_account')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
