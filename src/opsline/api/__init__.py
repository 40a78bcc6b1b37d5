"""REST API plumbing: problem+json errors, idempotency keys, TM Forum helpers."""
