"""Kafka adapter (aiokafka): consumer construction, receipt and dead-letter publishing."""
