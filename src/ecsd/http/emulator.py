"""The emulator controls over HTTP, under ``/_ecsd/`` (docs/testing-with-ecsd.md).

Served only with the simulated driver and only to the operator token (header
``X-Ecsd-Operator-Token``, or ``Authorization: Bearer <token>``); to anyone else, and with the local
driver, every route here answers exactly what an unknown path answers (404 ``Common.0404``), so
that a tenant cannot even learn that the controls exist.

    GET    /_ecsd/                              what is set: faults, holds, held jobs, step delay, snapshots
    POST   /_ecsd/reset                         back to the first start's state; controls and request log cleared
    GET    /_ecsd/snapshots                     the named states
    PUT    /_ecsd/snapshots/{name}              keep the current state as NAME
    POST   /_ecsd/snapshots/{name}/restore      return to NAME (controls kept)
    DELETE /_ecsd/snapshots/{name}
    POST   /_ecsd/seed                          apply a seed document (JSON, or YAML with a YAML content type)
    GET|POST|DELETE /_ecsd/faults               fail the next jobs of an operation at a step with a code
    GET|POST|DELETE /_ecsd/holds                freeze jobs before a step / release every held job
    GET|PUT /_ecsd/step-delay                   the simulated driver's seconds per operation
    GET|DELETE /_ecsd/requests                  the request log (``?since=SEQ``)
    POST   /_ecsd/servers/{server_id}/power-off the guest stops on its own (the power sync sees it)

The handlers parse and shape; the emulator package (``emulator/``) does the work.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.domain import access_keys
from ecsd.domain.errors import EcsError, invalid
from ecsd.emulator import seedfile, state
from ecsd.http.core import NO_BODY, Ctx, documented, endpoint, json, no_content, parse, query_int, read_json

PREFIX = "/_ecsd"
TOKEN_HEADER = "x-ecsd-operator-token"
_STRICT = ConfigDict(extra="forbid", strict=True)
_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


def _presented(request: Request) -> str | None:
    token = request.headers.get(TOKEN_HEADER)
    if token is None:
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            token = auth[7:].strip()
    return token


# --- models --------------------------------------------------------------------------------------------

class FaultBody(BaseModel):
    model_config = _STRICT
    operation: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=16)
    step: str | None = Field(None, min_length=1, max_length=64)
    server_id: str | None = Field(None, min_length=1, max_length=36)
    count: int = Field(1, ge=1, le=10_000)
    reason: str | None = Field(None, min_length=1, max_length=255)


class HoldBody(BaseModel):
    model_config = _STRICT
    operation: str | None = Field(None, min_length=1, max_length=64)
    step: str | None = Field(None, min_length=1, max_length=64)


class StepDelayBody(BaseModel):
    model_config = _STRICT           # strict still takes an int for a float
    seconds: float = Field(ge=0, le=600)


# --- handlers ------------------------------------------------------------------------------------------

@documented("none", ok=200)
async def show_emulator(request: Request, ctx: Ctx, emu: Any) -> Response:
    snapshots = await ctx.services.store.read(state.list_snapshots)
    return json({"emulator": {**emu.controls.view(), "snapshots": snapshots,
                              "requests": {"kept": len(emu.requests.entries), "size": emu.requests.entries.maxlen}}})


@documented("none", ok=200, body=NO_BODY)
async def reset(request: Request, ctx: Ctx, emu: Any) -> Response:
    done = await emu.restore(ctx.services, state.INITIAL, reset_controls=True)
    return json({"reset": done})


@documented("none", ok=200)
async def list_snapshots(request: Request, ctx: Ctx, emu: Any) -> Response:
    return json({"snapshots": await ctx.services.store.read(state.list_snapshots)})


@documented("none", ok=200, body=NO_BODY)
async def take_snapshot(request: Request, ctx: Ctx, emu: Any) -> Response:
    name = state.check_name(request.path_params["name"])
    return json({"snapshot": await ctx.services.store.run(state.take, name)})


@documented("none", ok=200, body=NO_BODY, errors=(404, 409))
async def restore_snapshot(request: Request, ctx: Ctx, emu: Any) -> Response:
    name = state.check_name(request.path_params["name"])
    return json({"restored": await emu.restore(ctx.services, name, reset_controls=False)})


@documented("none", ok=204, errors=(404, 409))
async def delete_snapshot(request: Request, ctx: Ctx, emu: Any) -> Response:
    await ctx.services.store.run(state.delete, state.check_name(request.path_params["name"]))
    return no_content()


@documented("none", ok=201, body={"type": "object", "description": "a seed document (docs/testing-with-ecsd.md); YAML with a YAML content type"}, errors=409)
async def seed(request: Request, ctx: Ctx, emu: Any) -> Response:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > seedfile.MAX_BYTES:
            raise invalid(f"a seed document is at most {seedfile.MAX_BYTES} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise EcsError("Common.0002")
    # Parsing (YAML), password hashes and generated keys are CPU work: off the event loop.
    prepared = await run_in_threadpool(seedfile.prepare, raw, media in _YAML_TYPES)
    box = access_keys.secret_box(ctx.services.settings) if any(u.access_key for u in prepared.seed.users) else None
    return json({"seeded": await emu.seed(ctx.services, prepared, box)}, status=201)


@documented("none", ok=200)
async def list_faults(request: Request, ctx: Ctx, emu: Any) -> Response:
    return json({"faults": [f.view() for f in emu.controls.faults]})


@documented("none", ok=201, body=FaultBody)
async def add_fault(request: Request, ctx: Ctx, emu: Any) -> Response:
    body = parse(FaultBody, await read_json(request, 4096))
    fault = emu.controls.fail_next(body.operation, body.code, body.step, body.server_id, body.count, body.reason)
    return json({"fault": fault.view()}, status=201)


@documented("none", ok=204)
async def clear_faults(request: Request, ctx: Ctx, emu: Any) -> Response:
    emu.controls.clear_faults()
    return no_content()


@documented("none", ok=200)
async def list_holds(request: Request, ctx: Ctx, emu: Any) -> Response:
    view = emu.controls.view()
    return json({"holds": view["holds"], "held_jobs": view["held_jobs"]})


@documented("none", ok=201, body=HoldBody)
async def add_hold(request: Request, ctx: Ctx, emu: Any) -> Response:
    raw = await request.body()
    body = parse(HoldBody, await read_json(request, 4096)) if raw.strip() else HoldBody()
    return json({"hold": emu.controls.hold(body.operation, body.step).view()}, status=201)


@documented("none", ok=200)
async def release_holds(request: Request, ctx: Ctx, emu: Any) -> Response:
    return json({"released": emu.controls.release()})


@documented("none", ok=200)
async def show_step_delay(request: Request, ctx: Ctx, emu: Any) -> Response:
    return json({"seconds": emu.controls.step_delay})


@documented("none", ok=200, body=StepDelayBody)
async def set_step_delay(request: Request, ctx: Ctx, emu: Any) -> Response:
    body = parse(StepDelayBody, await read_json(request, 1024))
    emu.controls.set_step_delay(body.seconds)
    return json({"seconds": emu.controls.step_delay})


@documented("none", ok=200, query={"since": int})
async def list_requests(request: Request, ctx: Ctx, emu: Any) -> Response:
    since = query_int(request, "since", 0, 0, 2**62)
    return json({"requests": emu.requests.since(since)})


@documented("none", ok=204)
async def clear_requests(request: Request, ctx: Ctx, emu: Any) -> Response:
    emu.requests.clear()
    return no_content()


@documented("none", ok=202, empty=202, body=NO_BODY)
async def power_off_server(request: Request, ctx: Ctx, emu: Any) -> Response:
    ctx.services.driver.power_off(request.path_params["server_id"])
    return no_content(202)


_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _path(path: str, **handlers) -> Route:
    """One route per path taking every method, so that a caller without the token gets 404 whatever the
    method (a 405 would tell that the path exists); the operator gets 405 for a method not served."""

    @endpoint(auth="none")
    async def dispatch(request: Request, ctx: Ctx) -> Response:
        emulator = ctx.services.emulator
        if emulator is None or not emulator.allows(_presented(request)):
            raise EcsError("Common.0404")
        handler = handlers.get(request.method)
        if handler is None:
            raise EcsError("Common.0405", headers={"Allow": ", ".join(handlers)})
        return await handler(request, ctx, emulator)

    dispatch.__name__ = "emulator_" + "_".join(h.__name__ for h in handlers.values())
    route = Route(f"{PREFIX}{path}", dispatch, methods=_METHODS)
    route.emulator_handlers = handlers          # type: ignore[attr-defined] - for the OpenAPI document
    return route


routes = [
    _path("/", GET=show_emulator),
    _path("/reset", POST=reset),
    _path("/snapshots", GET=list_snapshots),
    _path("/snapshots/{name}", PUT=take_snapshot, DELETE=delete_snapshot),
    _path("/snapshots/{name}/restore", POST=restore_snapshot),
    _path("/seed", POST=seed),
    _path("/faults", GET=list_faults, POST=add_fault, DELETE=clear_faults),
    _path("/holds", GET=list_holds, POST=add_hold, DELETE=release_holds),
    _path("/step-delay", GET=show_step_delay, PUT=set_step_delay),
    _path("/requests", GET=list_requests, DELETE=clear_requests),
    _path("/servers/{server_id}/power-off", POST=power_off_server),
]
