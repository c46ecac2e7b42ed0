"""The shipment-milestone notifier."""

__version__ = "0.1.0"
