"""The service's own HTTP endpoints: metrics and health."""
