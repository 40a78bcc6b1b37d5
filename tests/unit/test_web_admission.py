"""Admission control: requests beyond the limit wait in order, are shed with 503 problem+json after max_wait, and
health checks are never held back."""

import asyncio
import threading

import httpx
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from opsline.web.admission import AdmissionLimit


def _run(main) -> None:  # type: ignore[no-untyped-def]
    """asyncio.run(main()) in a thread of its own: the test worker may already run an event loop (browser tests)."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 (re-raised in the test's thread)
            errors.append(exc)

    t = threading.Thread(target=target)
    t.start()
    t.join(60)
    assert not t.is_alive(), "the admission test did not finish in 60 s"
    if errors:
        raise errors[0]


def _app(gate: asyncio.Event, seen: list[str]) -> Starlette:
    async def slow(request):  # type: ignore[no-untyped-def]
        seen.append(request.query_params["n"])
        await gate.wait()
        return PlainTextResponse("done " + request.query_params["n"])

    async def health(request):  # type: ignore[no-untyped-def]
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/work", slow), Route("/healthz", health)])


def test_a_request_beyond_the_limit_waits_for_a_slot_and_is_then_served_in_order() -> None:
    async def run() -> None:
        gate, seen = asyncio.Event(), []
        app = AdmissionLimit(_app(gate, seen), limit=1, max_wait=5)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            first = asyncio.create_task(c.get("/work", params={"n": "1"}))
            await asyncio.sleep(0.05)
            second = asyncio.create_task(c.get("/work", params={"n": "2"}))
            await asyncio.sleep(0.05)
            assert seen == ["1"]  # the second waits outside the app: it holds no thread and no connection
            assert (await c.get("/healthz")).text == "ok"  # a busy process still answers its health check
            gate.set()
            assert (await first).text == "done 1" and (await second).text == "done 2"
            assert seen == ["1", "2"]

    _run(run)


def test_a_request_that_waited_max_wait_is_shed_with_503_problem_json_and_retry_after() -> None:
    async def run() -> None:
        gate, seen = asyncio.Event(), []
        app = AdmissionLimit(_app(gate, seen), limit=1, max_wait=0.1)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            first = asyncio.create_task(c.get("/work", params={"n": "1"}))
            await asyncio.sleep(0.05)
            shed = await c.get("/work", params={"n": "2"})
            assert shed.status_code == 503 and shed.headers["retry-after"] == "5"
            assert shed.headers["content-type"] == "application/problem+json"
            assert shed.json()["status"] == 503 and shed.json()["reason"] == "Service busy" and shed.json()["code"] == "service-busy"
            tmf = await c.get("/tmf-api/x")  # on the TMF API the error body follows TMF630 (status as a string)
            assert tmf.status_code == 503 and tmf.json()["status"] == "503"
            assert seen == ["1"]  # the shed request never reached the app
            gate.set()
            assert (await first).status_code == 200

    _run(run)
