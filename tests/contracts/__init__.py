"""Contract test classes, one per port: each states what every implementation of the port does.

A class here is abstract: its tests take a ``subject`` fixture (and a few hooks, such as letting
time pass) that it leaves to subclasses. ``tests/unit`` subclasses it with the in-memory fake of
``service.testing``, ``tests/integration`` with the real adapter, so the fake the unit suite
trusts is proven to behave like the adapter it stands for (FastStream's ``tests/brokers/base``).
A test that fails only for the fake means the fake is wrong: fix the fake.
"""
