"""A tooz coordination driver for the lease service (``lease://host:port?timeout=30``)."""

from .driver import LeaseDriver, LeaseLock

__all__ = ["LeaseDriver", "LeaseLock"]
