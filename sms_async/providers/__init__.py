"""Gateway drivers: each describes requests and reads answers for one gateway, without I/O."""

from sms_async.providers._base import Driver, PreparedSend, SendAnswer
from sms_async.providers.itecpay import ItecPay
from sms_async.providers.iton import Iton

__all__ = ["Driver", "ItecPay", "Iton", "PreparedSend", "SendAnswer"]
