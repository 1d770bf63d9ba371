"""Re-exported: the backoff arithmetic is hub.core.backoff (one
implementation for the fan-out and the store)."""

from hub.core.backoff import Backoff

__all__ = ["Backoff"]
