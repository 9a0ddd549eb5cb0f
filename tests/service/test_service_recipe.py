"""The service recipe (docs/how-to/service_app.py) under Starlette's TestClient and as a bare ASGI app."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import anyio
from recipe_support import RECIPE, check_record, load_recipe, recipe_environment, records, set_environment
from service_support import numbers, received
from starlette.exceptions import StarletteDeprecationWarning

from sms_async.testing import Fault

with warnings.catch_warnings():
    # Starlette's test client would rather run on httpx2; httpx, which sms_async already depends
    # on, still works, and one HTTP client in the test dependencies is enough.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

DOC = RECIPE.with_name("service.md")


def post(client: TestClient, to: list[str], request_id: str) -> Any:
    """POST /send; the JSON answer."""
    response = client.post(
        "/send",
        json={"to": to, "text": "Hello", "sender_id": "ITONAB"},
        headers={"x-request-id": request_id},
    )
    return response.status_code, response.json()


def test_the_docs_page_shows_the_recipe_as_tested():
    """The how-to page quotes the recipe's code exactly as the tests run it."""
    assert RECIPE.read_text() in DOC.read_text()


def test_recipe_answers_each_number_and_logs_the_call(sms_gateway, monkeypatch, caplog):
    """A request sends once to each number and answers its outcome; the call's record is logged."""
    set_environment(monkeypatch, recipe_environment(sms_gateway))
    caplog.set_level(logging.INFO, logger="sms_service")
    sent = numbers(250)
    with TestClient(load_recipe().app) as client:
        status, answer = post(client, sent, "r1")
    assert status == 200
    assert set(answer["accepted"]) == set(sent)
    assert answer["aborted"] is None
    (record,) = records([r.getMessage() for r in caplog.records if r.name == "sms_service"])
    assert record["request"] == "r1"
    check_record(record, sent, received(sms_gateway))


def test_recipe_refuses_a_bad_sender_id_with_400(sms_gateway, monkeypatch):
    """A sender id the gateway cannot take is a 400 that says why, and nothing is sent."""
    set_environment(monkeypatch, recipe_environment(sms_gateway))
    with TestClient(load_recipe().app) as client:
        response = client.post("/send", json={"to": numbers(1), "text": "Hi", "sender_id": "BAD SENDER ID!!"})
    assert response.status_code == 400
    assert "sender id" in response.json()["error"]
    assert received(sms_gateway) == set()


def test_recipe_per_request_deadline_answers_a_partial_result(sms_gateway_factory, monkeypatch):
    """Past its deadline a request answers: what was accepted, the stalled batch unknown, the rest unsent."""
    gw = sms_gateway_factory(faults=[Fault("stall", on_requests={2})])
    set_environment(monkeypatch, recipe_environment(gw, SMS_SEND_TIMEOUT="0.3", SMS_CONCURRENCY="1"))
    sent = numbers(300)
    with TestClient(load_recipe().app) as client:
        status, answer = post(client, sent, "r1")
    assert status == 200
    assert answer["aborted"] == "SendTimeout"
    assert answer["counts"] == {"accepted": 100, "unknown": 100, "unsent": 100}
    check_record(answer, sent, received(gw))


async def test_recipe_cancels_the_send_when_the_client_disconnects(sms_gateway_factory, monkeypatch, caplog):
    """A client that goes away cancels its send; the record logged accounts for every number."""
    gw = sms_gateway_factory(faults=[Fault("latency", rate=1.0, seconds=0.3)])
    set_environment(monkeypatch, recipe_environment(gw, SMS_CONCURRENCY="2"))
    caplog.set_level(logging.INFO, logger="sms_service")
    app = load_recipe().app
    sent = numbers(1000)
    body = json.dumps({"to": sent, "text": "Hello", "sender_id": "ITONAB"}).encode()
    gone = anyio.Event()
    answered: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        answered.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/send",
        "raw_path": b"/send",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"x-request-id", b"gone")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    async with app.router.lifespan_context(app), anyio.create_task_group() as tg:
        tg.start_soon(app, scope, receive, send)
        with anyio.fail_after(20):
            while gw.stats.in_flight < 2:  # noqa: ASYNC110 - the gateway's thread
                await anyio.sleep(0.005)
        gone.set()
    with anyio.fail_after(20):
        while gw.stats.in_flight:  # noqa: ASYNC110 - the gateway's thread
            await anyio.sleep(0.005)
    (record,) = records([r.getMessage() for r in caplog.records if r.name == "sms_service"])
    assert record["request"] == "gone"
    assert record["aborted"] == "SendCancelled"
    assert record["counts"]["unknown"] == 200  # the two batches on the wire
    assert record["unread"] + len(record["failed"]) + len(record["accepted"]) == 1000
    check_record(record, sent, received(gw))
    warned = [r for r in caplog.records if r.name == "sms_async" and "send cancelled" in r.getMessage()]
    assert len(warned) == 1


def test_docs_page_exists_and_names_the_recipe_file():
    """The how-to page tells where the runnable recipe lives."""
    assert "docs/how-to/service_app.py" in DOC.read_text()
    assert Path(RECIPE).is_file()
