"""The built-in gateways' protocols: registered on import, their shorthand properties gathered in one class.

``SimulatedGateway`` inherits :class:`BuiltinShorthands`, so the properties
and keyword shorthands of a built-in gateway live in that gateway's own
module (``_iton.py``, ``_itecpay.py``) and nowhere else.
"""

from __future__ import annotations

from sms_async.testing._itecpay import ItecPayProtocol, ItecPayShorthands
from sms_async.testing._iton import ItonProtocol, ItonShorthands
from sms_async.testing._registry import register_protocol

__all__ = ["BUILTIN_PROTOCOLS", "BuiltinShorthands"]

#: The protocols every ``SimulatedGateway()`` serves, in this order, before any other registered one.
BUILTIN_PROTOCOLS = (ItonProtocol, ItecPayProtocol)


class BuiltinShorthands(ItonShorthands, ItecPayShorthands):
    """The built-in gateways' shorthand properties, for ``SimulatedGateway`` to inherit."""

    __slots__ = ()


for _protocol in BUILTIN_PROTOCOLS:
    register_protocol(_protocol)
