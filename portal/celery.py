"""The Celery app and the whole periodic schedule, in one place.

Tasks are named by string so that `portal` imports no app. Nothing here is needed for correctness of expiry:
the sweeper reads due grants from the database, so a lost message only delays work.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("porte")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _schedule(sender: Celery, **_: object) -> None:
    from django.conf import settings

    sender.conf.beat_schedule = {
        # Ends access at grant.ends_at: claims due grants and puts the targeted deny on their roles.
        "expire-due-grants": {
            "task": "grants.tasks.expiry_sweep",
            "schedule": settings.EXPIRY_SWEEP_SECONDS,
            "options": {"expires": settings.EXPIRY_SWEEP_SECONDS * 5},
        },
        # Re-drives grants whose activation or expiry message was lost, and repairs IAM drift.
        "reconcile": {
            "task": "grants.tasks.reconcile",
            "schedule": settings.RECONCILE_SECONDS,
            "options": {"expires": settings.RECONCILE_SECONDS},
        },
        # Resumes account vending and network baselines that went quiet (lost message, worker died while
        # CreateAccount was still running): partners with a pending step untouched for this long are re-queued.
        "resume-partner-provisioning": {
            "task": "partners.tasks.provisioning_resume",
            "schedule": settings.PROVISION_RESUME_SECONDS,
            "options": {"expires": settings.PROVISION_RESUME_SECONDS},
        },
        # Ingests new CloudTrail log files from the organisation trail's bucket (resumes from a cursor per prefix;
        # idempotent on eventID, so an overlapping or repeated run adds nothing).
        "ingest-activity": {
            "task": "activity.tasks.activity_ingest",
            "schedule": settings.ACTIVITY_INGEST_SECONDS,
            "options": {"expires": settings.ACTIVITY_INGEST_SECONDS},
        },
        # Delivers notices still pending (lost task, mail server or webhook down earlier); each is sent once.
        "redrive-notifications": {
            "task": "portal.tasks.notifications_redrive",
            "schedule": 120.0,
            "options": {"expires": 120.0},
        },
        # Approvals: pending requests nobody decided in time lapse (requester told); holders are told once
        # that their access ends soon.
        "expire-pending-requests": {
            "task": "approvals.tasks.requests_expire_pending",
            "schedule": settings.APPROVALS_SWEEP_SECONDS,
            "options": {"expires": settings.APPROVALS_SWEEP_SECONDS},
        },
        "notify-expiring-grants": {
            "task": "approvals.tasks.grants_notify_expiring",
            "schedule": settings.APPROVALS_SWEEP_SECONDS,
            "options": {"expires": settings.APPROVALS_SWEEP_SECONDS},
        },
        # Access reviews: starts each partner's scheduled review when its interval (quarterly by default) has
        # passed, reminds reviewers 3 days and 1 day before the deadline, and settles undecided items at the
        # deadline (revoke, or keep and escalate). Each step is idempotent, so a repeated run does nothing twice.
        "access-reviews": {
            "task": "reviews.tasks.reviews_tick",
            "schedule": 900.0,
            "options": {"expires": 900.0},
        },
        # Deletes activity older than PORTE_ACTIVITY_RETENTION_DAYS, in small batches.
        "purge-activity": {
            "task": "activity.tasks.activity_purge",
            "schedule": 3600.0,
            "options": {"expires": 3600.0},
        },
        # Chains committed audit events (writers only insert; see portal/audit.py). Commits that appended also
        # ask for a seal at once: this is the safety net.
        "seal-audit-chain": {
            "task": "portal.tasks.audit_seal",
            "schedule": settings.AUDIT_SEAL_SECONDS,
            "options": {"expires": settings.AUDIT_SEAL_SECONDS * 5},
        },
        # Forgets IdP session ids (partners.logout's index) of sessions past their absolute limit.
        "prune-federated-sessions": {
            "task": "partners.tasks.federated_sessions_prune",
            "schedule": 3600.0,
        },
        # Records whether the /health/ checks pass, for the availability figure of the metrics dashboard.
        "health-sample": {
            "task": "portal.tasks.health_sample",
            "schedule": settings.HEALTH_SAMPLE_SECONDS,
            "options": {"expires": settings.HEALTH_SAMPLE_SECONDS},
        },
    }
    if settings.ACTIVITY_SQS_QUEUE_URL:
        # The near-real-time path: trail files named by the bucket's notifications, within seconds of delivery
        # (the listing above stays the safety net).
        sender.conf.beat_schedule["ingest-activity-notified"] = {
            "task": "activity.tasks.activity_ingest_notified",
            "schedule": settings.ACTIVITY_SQS_POLL_SECONDS,
            "options": {"expires": settings.ACTIVITY_SQS_POLL_SECONDS},
        }
