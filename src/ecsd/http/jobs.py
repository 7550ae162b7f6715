"""``GET /v1/{project_id}/jobs/{job_id}``: what clients poll until SUCCESS or FAIL."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.domain.jobs import get_job
from ecsd.http.core import Ctx, endpoint, json


@endpoint(ok=200)      # an unknown job id is 400 Common.0011, as the reference has it
async def show_job(request: Request, ctx: Ctx) -> Response:
    job = await ctx.services.store.read(get_job, ctx.ident.project_id, request.path_params["job_id"])
    return json(job)


routes = [Route("/v1/{project_id}/jobs/{job_id}", show_job, methods=["GET"])]
