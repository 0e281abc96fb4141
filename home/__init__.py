"""The pages that bring the domains together — a person's home, a grant's page, the staff home — and the demo's
seeded story. The top of the dependency rule: it may use every app; no app uses it."""
