"""Approvals: who must agree before a request becomes a grant, and under which conditions it may be made.

- `models`: ApprovalPolicy (per role; none = auto-approve), Approval (one person's yes), BreakGlassReview (the
  post-hoc review every break-glass grant gets), RoleChange (a four-eyes change request on a role);
- `context`: the conditions checked when requesting and minting (access window, source IP, MFA, device posture);
- `services`: approve, deny, expire pending requests, break-glass, "expiring soon" notices;
- `changes`: four-eyes changes of a role's permissions, limits, eligibility and approval policy.
"""
