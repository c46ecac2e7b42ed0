"""A sandbox SMS provider for tests and demos: speaks the providers' wire formats on loopback,
records what it accepts and injects faults on request."""
