"""Fixtures of the sandbox tests."""

from __future__ import annotations

from tests.unit.sandbox.receiver import receiver  # noqa: F401  # a fixture, shared with the provider tests
