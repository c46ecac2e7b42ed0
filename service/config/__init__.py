"""The settings' groups, a module per concern, composed into ``service.settings.Settings``.

Each group is a plain pydantic model holding its fields and the validators of those fields only;
``Settings`` inherits them all and alone reads the environment (``NOTIFIER_<NAME>``).
"""
