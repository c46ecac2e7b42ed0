"""PostgreSQL adapter: migrations and the notification store."""
