"""The API area's running hub and banks, reused for the client tests."""

from tests.api.conftest import clock, fleet, harness

__all__ = ["clock", "fleet", "harness"]
