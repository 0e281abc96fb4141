import datetime
import django.db.models.deletion
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
                    name='ReviewCampaign',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kind', models.CharField(choices=[('scheduled', 'Scheduled'), ('on_demand', 'On demand')], max_length=16)),
                        ('status', models.CharField(choices=[('open', 'Open'), ('closed', 'Closed')], default='open', max_length=16)),
                        ('reviewer', models.CharField(choices=[('sponsor', "The partner's sponsor (Porte staff)"), ('partner_admins', "The partner's admins")], max_length=16)),
                        ('on_deadline', models.CharField(choices=[('revoke', 'Revoke undecided access'), ('escalate', 'Keep undecided access and escalate to staff')], max_length=16)),
                        ('period_start', models.DateTimeField()),
                        ('period_end', models.DateTimeField()),
                        ('started_at', models.DateTimeField()),
                        ('deadline', models.DateTimeField()),
                        ('closed_at', models.DateTimeField(blank=True, null=True)),
                        ('reminders_sent', models.JSONField(blank=True, default=list)),
                        ('roles', models.JSONField(blank=True, default=dict)),
                        ('partner', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='review_campaigns', to='partners.partner')),
                        ('started_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'grants_reviewcampaign',
                        'ordering': ['-started_at', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='ReviewItem',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kind', models.CharField(choices=[('eligibility', 'Role eligibility (person)'), ('group_eligibility', 'Role eligibility (IdP group)'), ('membership', 'Membership'), ('admin', 'Partner admin')], max_length=20)),
                        ('assignee', models.CharField(choices=[('sponsor', 'Sponsor'), ('partner_admins', 'Partner admins')], max_length=16)),
                        ('group', models.CharField(blank=True, max_length=100)),
                        ('label', models.CharField(max_length=300)),
                        ('last_sign_in_at', models.DateTimeField(blank=True, null=True)),
                        ('last_activity_at', models.DateTimeField(blank=True, null=True)),
                        ('grants_in_period', models.PositiveIntegerField(default=0)),
                        ('last_grant_at', models.DateTimeField(blank=True, null=True)),
                        ('actions_used', models.JSONField(blank=True, default=list)),
                        ('actions_allowed_count', models.PositiveIntegerField(default=0)),
                        ('recommended', models.CharField(choices=[('keep', 'Keep'), ('revoke', 'Revoke'), ('narrow', 'Narrow')], max_length=8)),
                        ('recommendation', models.CharField(max_length=200)),
                        ('decision', models.CharField(blank=True, choices=[('keep', 'Keep'), ('revoke', 'Revoke'), ('narrow', 'Narrow')], max_length=8)),
                        ('comment', models.TextField(blank=True)),
                        ('decided_at', models.DateTimeField(blank=True, null=True)),
                        ('by_deadline', models.BooleanField(default=False)),
                        ('escalated', models.BooleanField(default=False)),
                        ('enacted_at', models.DateTimeField(blank=True, null=True)),
                        ('follow_up_done_at', models.DateTimeField(blank=True, null=True)),
                        ('campaign', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='items', to='reviews.reviewcampaign')),
                        ('decided_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('eligibility', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='grants.eligibility')),
                        ('role', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='grants.role')),
                        ('subject', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'grants_reviewitem',
                        'ordering': ['id'],
                    },
                ),
                migrations.CreateModel(
                    name='ReviewSettings',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('interval', models.DurationField(default=datetime.timedelta(days=91), help_text='Time between scheduled reviews.')),
                        ('reviewer', models.CharField(choices=[('sponsor', "The partner's sponsor (Porte staff)"), ('partner_admins', "The partner's admins")], default='sponsor', max_length=16)),
                        ('response_time', models.DurationField(default=datetime.timedelta(days=14), help_text='From start to deadline.')),
                        ('on_deadline', models.CharField(choices=[('revoke', 'Revoke undecided access'), ('escalate', 'Keep undecided access and escalate to staff')], default='revoke', max_length=16)),
                        ('partner', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='review_settings', to='partners.partner')),
                    ],
                    options={
                        'db_table': 'grants_reviewsettings',
                        'verbose_name_plural': 'review settings',
                    },
                ),
                migrations.AddIndex(
                    model_name='reviewcampaign',
                    index=models.Index(fields=['status', 'deadline'], name='review_open_deadline_idx'),
                ),
                migrations.AddConstraint(
                    model_name='reviewcampaign',
                    constraint=models.CheckConstraint(condition=models.Q(('deadline__gt', models.F('started_at'))), name='review_deadline_after'),
                ),
                migrations.AddConstraint(
                    model_name='reviewcampaign',
                    constraint=models.CheckConstraint(condition=models.Q(('period_end__gte', models.F('period_start'))), name='review_period_ordered'),
                ),
                migrations.AddConstraint(
                    model_name='reviewcampaign',
                    constraint=models.UniqueConstraint(condition=models.Q(('status', 'open')), fields=('partner',), name='one_open_review_per_partner'),
                ),
                migrations.AddIndex(
                    model_name='reviewitem',
                    index=models.Index(fields=['campaign', 'decision'], name='review_item_decision_idx'),
                ),
                migrations.AddConstraint(
                    model_name='reviewitem',
                    constraint=models.CheckConstraint(condition=models.Q(('decision', ''), ('decided_at__isnull', False), _connector='OR'), name='review_decision_has_time'),
                ),
                migrations.AddConstraint(
                    model_name='reviewitem',
                    constraint=models.CheckConstraint(condition=models.Q(('decision__in', ['', 'keep']), models.Q(('comment', ''), _negated=True), _connector='OR'), name='review_comment_required'),
                ),
                migrations.AddConstraint(
                    model_name='reviewsettings',
                    constraint=models.CheckConstraint(condition=models.Q(('interval__gte', datetime.timedelta(days=1))), name='review_interval_min_1d'),
                ),
                migrations.AddConstraint(
                    model_name='reviewsettings',
                    constraint=models.CheckConstraint(condition=models.Q(('response_time__gte', datetime.timedelta(days=1))), name='review_response_min_1d'),
                ),
            ],
            database_operations=[],
        ),
    ]
