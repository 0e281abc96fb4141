from __future__ import annotations

from typing import Any

from django import forms

from approvals.models import ApprovalPolicy, BreakGlassReview
from grants import limits


class DecisionReasonForm(forms.Form):
    # Optional here: the service says, in its own words, when a decision needs a reason.
    reason = forms.CharField(
        required=False,
        max_length=limits.TEXT_MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Reason (the other person is told)",
    )


class ReviewForm(forms.Form):
    verdict = forms.ChoiceField(choices=BreakGlassReview.Verdict.choices)
    notes = forms.CharField(max_length=4000, widget=forms.Textarea(attrs={"rows": 3}))


class ApprovalPolicyForm(forms.Form):
    auto_approve = forms.BooleanField(
        required=False, label="No approval policy: auto-approve every eligible request (the default)"
    )
    approvals_required = forms.IntegerField(
        min_value=0, max_value=5, initial=1, help_text="0: auto-approve (subject to MFA below)."
    )
    approvers = forms.ChoiceField(choices=ApprovalPolicy.Approvers.choices)
    partner_approver_group = forms.CharField(
        required=False,
        max_length=100,
        help_text="IdP group of the partner's approvers. Empty: the partner's admins approve.",
    )
    auto_approve_requires_mfa = forms.BooleanField(
        required=False, label="Auto-approve only when the sign-in asserted MFA (else one approver)"
    )
    require_mfa = forms.BooleanField(required=False, label="Refuse requests without MFA at sign-in")
    required_claim = forms.CharField(
        required=False,
        max_length=100,
        label="Device posture: required IdP claim",
        help_text="e.g. device_compliant",
    )
    required_claim_value = forms.CharField(required=False, max_length=200, label="Required value")
    break_glass_allowed = forms.BooleanField(
        required=False, label="Allow break-glass (immediate, loud, reviewed)"
    )
    pending_ttl_minutes = forms.IntegerField(
        min_value=5, max_value=14 * 24 * 60, initial=24 * 60, label="Pending requests lapse after (minutes)"
    )
    reason = forms.CharField(required=False, max_length=2000, help_text="Why: shown to the reviewer.")

    def policy(self) -> dict[str, Any] | None:
        data = self.cleaned_data
        if data["auto_approve"]:
            return None
        return {
            "approvals_required": data["approvals_required"],
            "approvers": data["approvers"],
            "partner_approver_group": data["partner_approver_group"].strip(),
            "auto_approve_requires_mfa": data["auto_approve_requires_mfa"],
            "require_mfa": data["require_mfa"],
            "required_claim": data["required_claim"].strip(),
            "required_claim_value": data["required_claim_value"].strip(),
            "break_glass_allowed": data["break_glass_allowed"],
            "pending_ttl_s": data["pending_ttl_minutes"] * 60,
        }

    @classmethod
    def initial_for(cls, policy: dict[str, Any] | None) -> dict[str, Any]:
        if policy is None:
            return {"auto_approve": True}
        return {**policy, "pending_ttl_minutes": policy["pending_ttl_s"] // 60}
