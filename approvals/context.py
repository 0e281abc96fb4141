"""The conditions a request (and each mint) must meet besides eligibility: the partner's access window, its
source IP allow-list, MFA asserted by the partner's IdP, and a device-posture claim. Pure reads: the caller
records the outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from approvals.models import ApprovalPolicy
from grants.models import Role
from partners.adapter import SIGN_IN_EVIDENCE_KEY
from partners.conditions import Refusal, ip_refusal, window_refusal


@dataclass(frozen=True)
class Evidence:
    """What is known about the person's sign-in and connection (kept on the AccessRequest as `context`)."""

    source_ip: str | None = None
    mfa: bool = False
    authn_methods: list[str] = field(default_factory=list)
    claims: dict[str, list[str]] = field(default_factory=dict)
    # Where the evidence came from: "idp" (browser session) or "none" (API token, no sign-in evidence).
    origin: str = "none"

    @classmethod
    def from_session(cls, session: Any, source_ip: str | None) -> Evidence:
        stored = session.get(SIGN_IN_EVIDENCE_KEY) if session is not None else None
        if not isinstance(stored, dict):
            return cls(source_ip=source_ip)
        return cls(
            source_ip=source_ip,
            mfa=bool(stored.get("mfa")),
            authn_methods=[str(m) for m in stored.get("authn_methods") or []],
            claims={str(k): [str(x) for x in v] for k, v in (stored.get("claims") or {}).items()},
            origin="idp",
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_ip": self.source_ip,
            "mfa": self.mfa,
            "authn_methods": self.authn_methods,
            "claims": self.claims,
            "origin": self.origin,
        }


def policy_refusal(policy: ApprovalPolicy | None, evidence: Evidence) -> Refusal | None:
    if policy is None:
        return None
    if policy.require_mfa and not evidence.mfa:
        return Refusal(
            "mfa",
            "This role needs a sign-in with multi-factor authentication, and your identity provider did not "
            "assert one. Sign out, sign in again with MFA, then request again.",
        )
    if policy.required_claim:
        values = evidence.claims.get(policy.required_claim) or []
        if policy.required_claim_value.lower() not in [v.lower() for v in values]:
            return Refusal(
                "device_posture",
                f"This role needs a managed, compliant device: your identity provider did not assert "
                f"{policy.required_claim}={policy.required_claim_value}.",
            )
    return None


def context_refusal(
    role: Role, evidence: Evidence, at: datetime, *, break_glass: bool = False
) -> Refusal | None:
    """The first condition that fails, in the order a person can best act on. Break-glass skips the window
    (emergencies do not keep office hours) but never the network, MFA or posture conditions."""
    partner = role.partner
    policy = ApprovalPolicy.objects.filter(role=role).first()
    return (
        (None if break_glass else window_refusal(partner, at))
        or ip_refusal(partner, evidence.source_ip)
        or policy_refusal(policy, evidence)
    )
