"""The pure core: values and decisions, no I/O and no asyncio."""
