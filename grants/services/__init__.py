"""Business actions on grants, each module one question: `activation`, `minting` (credentials), `expiry`,
`revocation`, `reconciliation`, `role_setup`. Every state change is audited in its transaction; every action is
idempotent, so a replayed task is harmless. Requests and their decisions are `approvals.services`."""
