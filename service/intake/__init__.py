"""Stage 1, intake: a consumed record becomes a validated event, or a dead letter with its reason."""
