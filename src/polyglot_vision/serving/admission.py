"""Admission to the demo's queue: per-request checks before batching, and "busy, try again" when it is full.

Gradio runs a batched function once for many requests; anything it refuses on the way there (a call with
the wrong number of inputs, a file input that is not FileData or was not uploaded to this server) fails
every request of that batch, not just the faulty one. `AdmissionGuard` runs Gradio's own checks on each
call before it joins the queue and answers a faulty one alone with HTTP 422 and a one-line reason.

When the queue is full Gradio answers HTTP 503 "Queue is full. Max size is N and size is N."; the guard
rewrites that into `BUSY_MESSAGE`, which says what to do. The server answers normally as soon as the
queue has room again.

Both routes a call can take are covered: `POST /gradio_api/call/<api_name>` (the plain HTTP API) and
`POST /gradio_api/queue/join` (the browser and gradio_client, by function index).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

import gradio as gr
from gradio import utils as gradio_utils
from gradio.data_classes import FileData
from starlette.middleware import Middleware

BUSY_MESSAGE = "The demo is busy: too many people are waiting for an answer. Please try again in a few seconds."
FILE_INPUT_HELP = (
    'A file input must be {"path": <a path from /gradio_api/upload>, "meta": {"_type": "gradio.FileData"}}.'
)
MAX_CALL_BODY = 1 << 20  # a call is a few hundred bytes of JSON; files go to /gradio_api/upload

Check = Callable[[object], "str | None"]


class AdmissionGuard:
    """ASGI middleware: refuse a malformed call to a batched endpoint (422), say "busy" when the queue is full."""

    def __init__(self, app, checks_by_api: dict[str, list[Check | None]], checks_by_fn: dict[int, list[Check | None]]):
        self.app = app
        self.checks_by_api = checks_by_api  # api_name -> one check (or None) per input
        self.checks_by_fn = checks_by_fn  # fn_index -> the same

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        path = scope["path"].rstrip("/")
        api = path.rsplit("/gradio_api/call/", 1)[1] if "/gradio_api/call/" in path else None
        if api is None and not path.endswith("/gradio_api/queue/join"):
            return await self.app(scope, receive, send)

        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > MAX_CALL_BODY:
                return await refuse(send, 413, "The request body is too large.")
        body = b"".join(chunks)
        problem = self.problem(api, body)
        if problem:
            return await refuse(send, 422, problem)

        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send_busy_instead_of_queue_full(send))

    def problem(self, api: str | None, body: bytes) -> str | None:
        """Why this call must not join a batch, or None (malformed JSON is left to Gradio: it fails alone)."""
        try:
            payload = json.loads(body)
        except ValueError:
            return None
        if not isinstance(payload, dict):
            return None
        checks = self.checks_by_api.get(api) if api is not None else self.checks_by_fn.get(payload.get("fn_index"))
        if checks is None:
            return None
        data = payload.get("data")
        if not isinstance(data, list) or len(data) != len(checks):
            return f'This endpoint takes {len(checks)} inputs in "data".'
        for check, value in zip(checks, data):
            problem = check(value) if check else None
            if problem:
                return problem
        return None


def send_busy_instead_of_queue_full(send):
    """Wrap `send` so that Gradio's 503 "Queue is full" answer reaches the user as `BUSY_MESSAGE`."""
    refused = False

    async def wrapped(message):
        nonlocal refused
        if message["type"] == "http.response.start" and message["status"] == 503:
            refused = True
            return
        if refused and message["type"] == "http.response.body":
            await refuse(send, 503, BUSY_MESSAGE)
            return
        await send(message)

    return wrapped


async def refuse(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def file_check(demo: gr.Blocks, component) -> Check | None:
    """Gradio's own checks of a file input (its data model, and that the path was uploaded here), or None.

    Each path's verdict is Gradio's `is_allowed_file`, asked once (a crowd sending one example asks about one
    path); the upload folder is fixed while the app serves."""
    model = getattr(component, "data_model", None)
    fields = getattr(model, "model_fields", {})
    if not (isinstance(model, type) and (issubclass(model, FileData) or "path" in fields)):
        return None

    uploads = [gradio_utils.get_upload_folder()]

    @functools.lru_cache(maxsize=4096)
    def uploaded_here(path: str) -> bool:
        allowed, _ = gradio_utils.is_allowed_file(
            gradio_utils.abspath(path), blocked_paths=demo.blocked_paths or [], allowed_paths=[], created_paths=uploads
        )
        return allowed

    def check(value) -> str | None:
        if value is None:
            return None
        try:
            item = model.model_validate(value)
        except Exception:  # noqa: BLE001 - pydantic's ValidationError, or a TypeError on odd input
            return FILE_INPUT_HELP
        path = getattr(item, "path", None)
        if path and not uploaded_here(str(path)):
            return "The file was not uploaded to this server: POST it to /gradio_api/upload first."
        return None

    return check


def admission_middleware(demo: gr.Blocks) -> list[Middleware]:
    """The middleware for `demo.launch(app_kwargs={"middleware": …})`, covering `demo`'s batched events."""
    batched = {index: fn for index, fn in demo.fns.items() if fn.batch}
    checks = {index: [file_check(demo, component) for component in fn.inputs] for index, fn in batched.items()}
    by_api = {fn.api_name: checks[index] for index, fn in batched.items() if isinstance(fn.api_name, str)}
    return [Middleware(AdmissionGuard, checks_by_api=by_api, checks_by_fn=checks)]
