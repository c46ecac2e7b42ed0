"""Stage 4, send: the delivery engine's plan (SMS A, SMS B, email) over the rate-limited provider clients."""
