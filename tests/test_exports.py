"""The public names are pinned: adding or removing one is a deliberate change."""

import sms_async
import sms_async.providers
import sms_async.testing

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
    """DeliveryStatus has exactly the members the manual names."""
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


#: What a gateway's driver is written with (the gateway SDK), the registry, and the built-in drivers.
PROVIDERS = {
    "ENTRY_POINT_GROUP",
    "RAW_LIMIT",
    "REDACTED",
    "Capabilities",
    "Driver",
    "ItecPay",
    "Iton",
    "Origin",
    "PreparedSend",
    "SendAnswer",
    "WireRequest",
    "WireResponse",
    "body_excerpt",
    "check_credential",
    "check_params",
    "classify_http",
    "classify_text_error",
    "gateway",
    "gateway_names",
    "keep_secrets",
    "parse_retry_after",
    "redact",
    "register_gateway",
    "setting",
    "unregister_gateway",
}

#: What a simulator protocol is written with, the simulated gateway, and its registry.
TESTING = {
    "PROTOCOL_ENTRY_POINT_GROUP",
    "SENDER_ID",
    "Account",
    "DeliveryPlan",
    "DeliveryRule",
    "Fault",
    "FaultKind",
    "GatewayState",
    "GatewayStats",
    "LoggedRequest",
    "Operation",
    "Request",
    "RequestLog",
    "Response",
    "SentMessage",
    "SimulatedGateway",
    "SimulatedProtocol",
    "SimulatorClient",
    "SimulatorStats",
    "TestClock",
    "json_response",
    "main",
    "parse_query",
    "phone_digits_ok",
    "register_protocol",
    "registered_protocols",
    "serve",
    "text_response",
    "unregister_protocol",
}


def test_gateway_sdk_is_pinned():
    """``sms_async.providers.__all__`` lists exactly the gateway SDK's names, each importable."""
    assert set(sms_async.providers.__all__) == PROVIDERS
    for name in PROVIDERS:
        assert hasattr(sms_async.providers, name), name


def test_simulator_sdk_is_pinned():
    """``sms_async.testing.__all__`` lists exactly the simulator's public names, each importable."""
    assert set(sms_async.testing.__all__) == TESTING
    for name in TESTING:
        assert hasattr(sms_async.testing, name), name


def test_entry_point_groups_are_fixed():
    """The entry-point groups other packages declare gateways in are part of the API."""
    assert sms_async.providers.ENTRY_POINT_GROUP == "sms_async.gateways"
    assert sms_async.testing.PROTOCOL_ENTRY_POINT_GROUP == "sms_async.simulator_protocols"


def test_public_sdk_names_live_in_their_modules():
    """The SDK re-exports the very objects the library uses, not copies."""
    from sms_async import _redact, _wire  # noqa: PLC0415  (comparing against the private homes)

    assert sms_async.providers.WireRequest is _wire.WireRequest
    assert sms_async.providers.keep_secrets is _redact.keep_secrets
