"""Adapters for the SMS and email providers: each implements ``SmsSender`` or ``EmailSender``
(``service.domain.ports``) and translates its provider's failures into ``service.domain.errors``."""
