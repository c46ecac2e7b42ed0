"""The HTTP side: the operations listener (metrics, health), provider webhooks, customer pages, the support site."""
