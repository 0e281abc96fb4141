"""Recording the steps of a partner's AWS account and network baseline (`BaselineStep`), and running one step.

A step's service finds its AWS resources by tag before creating any, so running it again changes nothing; the
row only says what the last run saw. Transient AWS trouble leaves the step pending (the task retries, and the
resume sweeper picks up whatever went quiet); a permanent refusal fails it with a reason staff can act on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from partners.models import BaselineStep, Partner
from portal import aws
from portal.audit import audit_record
from portal.models import User

log = logging.getLogger(__name__)

Step = BaselineStep.Name
Status = BaselineStep.Status


class StepFailed(Exception):
    """A step cannot finish as things stand (e.g. a setting AWS refuses); `resources` is what it did make."""

    def __init__(self, message: str, resources: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.resources = resources or {}


class StepPending(Exception):
    """AWS is still working on it (e.g. creating the account): poll again later."""

    def __init__(self, message: str, resources: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.resources = resources or {}


@transaction.atomic
def baseline_step_record(
    *,
    partner: Partner,
    name: str,
    status: str,
    resource_ids: dict[str, Any] | None = None,
    error: str = "",
    actor: User | None = None,
) -> BaselineStep:
    """Save what a step's run found. Audited when the outcome changes (status, resources or error), so re-running
    an unchanged baseline adds nothing to the audit log."""
    step, _ = BaselineStep.objects.select_for_update(of=("self",), no_key=True).get_or_create(
        partner=partner, name=name
    )
    resources = step.resource_ids if resource_ids is None else resource_ids
    changed = (step.status, step.resource_ids, step.error) != (status, resources, error)
    step.status, step.resource_ids, step.error = status, resources, error
    step.updated_at = timezone.now()
    step.save(update_fields=["status", "resource_ids", "error", "updated_at"])
    if changed:
        audit_record(
            action=f"partner.baseline_{status}",
            obj=step,
            actor=actor,
            partner_id=partner.pk,
            data={"step": name, "resources": resources, "error": error},
        )
    return step


def step_run(partner: Partner, name: str, work: Callable[[], dict[str, Any]]) -> str:
    """Run one step and record its outcome; returns the step's status. `AwsUnavailable` is re-raised (after
    noting it on the step) so that the task retries."""
    try:
        resources = work()
    except aws.AwsUnavailable as exc:
        baseline_step_record(
            partner=partner, name=name, status=Status.PENDING, error=f"{exc} Retrying automatically."
        )
        raise
    except StepPending as exc:
        baseline_step_record(
            partner=partner, name=name, status=Status.PENDING, resource_ids=exc.resources, error=str(exc)
        )
        return Status.PENDING
    except (aws.AwsRejected, StepFailed) as exc:
        partial = exc.resources if isinstance(exc, StepFailed) else None
        baseline_step_record(
            partner=partner, name=name, status=Status.FAILED, resource_ids=partial, error=str(exc)
        )
        return Status.FAILED
    except Exception as exc:
        # A bug, not AWS: keep the detail in the log, tell staff where to look.
        log.exception("baseline step %s of partner %s crashed", name, partner.slug)
        baseline_step_record(
            partner=partner,
            name=name,
            status=Status.FAILED,
            error=f"Porte hit an unexpected error ({type(exc).__name__}); see the worker log.",
        )
        return Status.FAILED
    baseline_step_record(partner=partner, name=name, status=Status.DONE, resource_ids=resources)
    return Status.DONE


def step_wait(partner: Partner, name: str, blocked_by: list[str]) -> str:
    """A step that cannot run yet because an earlier one is not done: pending, saying which."""
    labels = ", ".join(str(Step(b).label) for b in blocked_by)
    baseline_step_record(partner=partner, name=name, status=Status.PENDING, error=f"Waiting for: {labels}.")
    return Status.PENDING
