"""A made-up SMS gateway for sms_async: its driver (:class:`Toy`) and its protocol (:class:`ToyProtocol`).

The toy sends with a JSON POST and answers one id per request; it looks
statuses up one id at a time by query string, and has neither a balance nor
a do-not-disturb list. Both halves are written with sms_async's public names
only, and this distribution declares them as entry points, so that
``sms-async send --gateway toy`` and ``sms-async simulate --gateway toy`` find
them once it is installed.
"""

from toy_gateway.driver import STATES, Toy
from toy_gateway.simulator import ToyProtocol

__all__ = ["STATES", "Toy", "ToyProtocol"]
