"""A sandbox provider for tests and demos: speaks Twilio's, Infobip's and SendGrid's wire formats on
loopback, records what it accepts, sends their delivery callbacks and injects faults on request."""
