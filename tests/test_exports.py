"""The public names are pinned: adding or removing one is a deliberate change."""

import sms_async

EXPECTED = {
    "AmbiguousResponseError",
    "AuthenticationError",
    "BatchResult",
    "BulkResult",
    "BulkSender",
    "CallStopped",
    "ConfigurationError",
    "DeliveryReport",
    "DeliveryStatus",
    "EndpointError",
    "Encoding",
    "Estimate",
    "Failure",
    "GatewayBusyError",
    "GatewayError",
    "Hooks",
    "InsufficientCreditError",
    "InvalidMessageError",
    "InvalidNumberError",
    "InvalidSenderIdError",
    "ItecPay",
    "Iton",
    "Journal",
    "MaybeSentError",
    "Message",
    "NotSentError",
    "OutOfCreditError",
    "Outcome",
    "RecipientsError",
    "RejectedError",
    "RetryPolicy",
    "SendCancelled",
    "SendTimeout",
    "SenderClosed",
    "SenderStats",
    "SmsError",
    "Template",
    "Timeouts",
    "TransportError",
    "UnsupportedOperationError",
    "UsageError",
    "__version__",
    "install_log_filter",
}


def test_all_is_pinned():
    """``sms_async.__all__`` lists exactly the documented public names."""
    assert set(sms_async.__all__) == EXPECTED


def test_every_exported_name_exists_and_says_where_it_lives():
    """Every exported class is importable from the top level."""
    for name in sms_async.__all__:
        assert hasattr(sms_async, name), name


def test_delivery_status_members_are_fixed():
    """DeliveryStatus has exactly the members DESIGN.md names."""
    assert [m.name for m in sms_async.DeliveryStatus] == [
        "QUEUED",
        "PROCESSING",
        "SENT",
        "DELIVERED",
        "UNDELIVERED",
        "FAILED",
        "UNKNOWN",
    ]


def test_every_error_derives_from_the_root():
    """Every exported exception class has SmsError as its root."""
    for name in sms_async.__all__:
        obj = getattr(sms_async, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, sms_async.SmsError), name
