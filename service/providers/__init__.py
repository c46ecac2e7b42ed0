"""Adapters for the SMS providers: each implements ``service.domain.ports.SmsSender`` and
translates its provider's failures into ``service.domain.errors``."""
