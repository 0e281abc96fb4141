import datetime
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('grants', '0013_models_move_to_their_apps'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Taken over from the grants app: Django's state only, the tables (still grants_*) are already there.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Approval',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('at', models.DateTimeField()),
                        ('approver', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('request', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='approvals', to='grants.accessrequest')),
                    ],
                    options={
                        'db_table': 'grants_approval',
                        'ordering': ['at'],
                        'constraints': [models.UniqueConstraint(fields=('request', 'approver'), name='approval_once_per_person')],
                    },
                ),
                migrations.CreateModel(
                    name='ApprovalPolicy',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('approvals_required', models.PositiveSmallIntegerField(default=0)),
                        ('approvers', models.CharField(choices=[('staff', 'Porte staff'), ('partner', "The partner's approvers"), ('either', "Porte staff or the partner's approvers")], default='staff', max_length=8)),
                        ('partner_approver_group', models.CharField(blank=True, max_length=100)),
                        ('auto_approve_requires_mfa', models.BooleanField(default=False)),
                        ('require_mfa', models.BooleanField(default=False)),
                        ('required_claim', models.CharField(blank=True, max_length=100)),
                        ('required_claim_value', models.CharField(blank=True, max_length=200)),
                        ('break_glass_allowed', models.BooleanField(default=False)),
                        ('pending_ttl', models.DurationField(default=datetime.timedelta(days=1))),
                        ('role', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='approval_policy', to='grants.role')),
                    ],
                    options={
                        'db_table': 'grants_approvalpolicy',
                        'constraints': [models.CheckConstraint(condition=models.Q(('approvals_required__lte', 5)), name='approval_policy_at_most_5_approvers'), models.CheckConstraint(condition=models.Q(('pending_ttl__gte', datetime.timedelta(seconds=300)), ('pending_ttl__lte', datetime.timedelta(days=14))), name='approval_policy_ttl_5m_to_14d')],
                    },
                ),
                migrations.CreateModel(
                    name='BreakGlassReview',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('created_at', models.DateTimeField()),
                        ('verdict', models.CharField(blank=True, choices=[('justified', 'Justified'), ('unjustified', 'Not justified')], max_length=16)),
                        ('notes', models.TextField(blank=True)),
                        ('reviewed_at', models.DateTimeField(blank=True, null=True)),
                        ('request', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='break_glass_review', to='grants.accessrequest')),
                        ('reviewed_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'grants_breakglassreview',
                        'ordering': ['-created_at'],
                        'constraints': [models.CheckConstraint(condition=models.Q(models.Q(('verdict', ''), ('reviewed_at__isnull', True)), models.Q(models.Q(('verdict', ''), _negated=True), ('reviewed_at__isnull', False)), _connector='OR'), name='break_glass_review_closed_with_verdict')],
                    },
                ),
                migrations.CreateModel(
                    name='RoleChange',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('before', models.JSONField()),
                        ('after', models.JSONField()),
                        ('reason', models.TextField(blank=True)),
                        ('status', models.CharField(choices=[('pending', 'Pending'), ('applied', 'Approved and applied'), ('rejected', 'Rejected'), ('stale', 'Superseded (the role changed meanwhile)')], default='pending', max_length=16)),
                        ('created_at', models.DateTimeField()),
                        ('decided_at', models.DateTimeField(blank=True, null=True)),
                        ('decision_reason', models.TextField(blank=True)),
                        ('author', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('decided_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('role', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='changes', to='grants.role')),
                    ],
                    options={
                        'db_table': 'grants_rolechange',
                        'ordering': ['-created_at'],
                        'constraints': [models.CheckConstraint(condition=models.Q(models.Q(('status', 'applied'), _negated=True), models.Q(('decided_by', models.F('author')), _negated=True), _connector='OR'), name='role_change_not_decided_by_author')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
