"""The exceptions of ``aiodjango.broadcast``."""

from __future__ import annotations


class BroadcastError(Exception):
    """A message could not be published, or a subscription could not be made."""


class BroadcastUnavailable(BroadcastError):
    """The backend's server (Redis) cannot be reached: nothing was published or subscribed.

    Raised by ``publish()``/``publish_sync()`` during an outage (nothing is
    buffered), and by ``subscribe()`` while the backend is reconnecting.
    """


class SubscriptionOverflow(BroadcastError):
    """The subscriber fell ``QUEUE_SIZE`` messages behind and was disconnected.

    Raised by the subscription's iteration once the messages queued before the
    overflow have been read (``OVERFLOW: "disconnect"``, the default).
    """
