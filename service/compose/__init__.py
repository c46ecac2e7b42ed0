"""Stage 3, compose: consent, the recipient's number and locale, and the rendered SMS / email."""
