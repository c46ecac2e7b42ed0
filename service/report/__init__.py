"""Stage 5, report: outcomes recorded with their receipts (the outbox), delivery reports, the email fallback."""
