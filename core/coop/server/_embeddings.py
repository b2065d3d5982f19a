"""``POST /v1/embeddings``: OpenAI's embeddings API on coop's embedding models.

The body is checked into a :class:`coop.EmbeddingRequest` (errors name the field,
in OpenAI's error shape) and run by the engine's one retry/failover loop
(:meth:`coop.OpenAIEngine.embed`): deployments, balancing, key rotation and cost
work as for chat models. ``encoding_format = "base64"`` answers little-endian
float32 as OpenAI does.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .._embeddings import parse_embedding_request, token_count
from ._app import _coop_headers
from ._http import Receive, Send, send_json

if TYPE_CHECKING:
    from ._app import GatewayApp, RequestContext

__all__ = ["serve_embeddings"]


async def serve_embeddings(
    app: GatewayApp, receive: Receive, send: Send, ctx: RequestContext
) -> None:
    request = parse_embedding_request(await app._request_json(receive, ctx))
    ctx.model = request.model
    if ctx.key is not None:
        app.key_manager.check_names(ctx.key, [request.model])
        await app._admit_tokens(ctx, tokens=sum(token_count(i) for i in request.inputs()))
    assert app.dispatcher is not None
    deadline = time.monotonic() + app.config.server.request_timeout
    result = await app._guard(receive, app.dispatcher.engine.embed(request, deadline=deadline))
    ctx.model, ctx.deployment = result.model, result.deployment
    ctx.response_headers += _coop_headers(result.model, result.deployment, result.cost)
    await send_json(send, 200, result.to_openai(request.encoding_format))
