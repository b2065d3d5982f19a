"""The one HTTP client coop uses to reach upstreams, chosen by measurement.

Measured on this project's 2-core machines (see docs/performance.md): a proxy
built on aiohttp's client served ~5.6k req/s, the same on httpx's default
transport ~0.6k req/s, and httpx's API over an aiohttp transport ~2.4k req/s.
So under asyncio coop talks to aiohttp directly; under trio (where aiohttp
cannot run) it uses httpx. Both sit behind :class:`HTTPClient`, a deliberately
small interface (open a request, read or iterate the body) that providers use,
so the choice never leaks into plugins. Transport failures become coop's typed
upstream errors here, once.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping
from typing import Any

import attrs
import sniffio

from ._errors import UpstreamConnectionError, UpstreamTimeoutError

__all__ = ["HTTPClient", "HTTPResponse", "Timeouts", "open_http_client"]


@attrs.frozen
class Timeouts:
    """Seconds. ``read`` bounds the wait between two chunks of the body."""

    connect: float = 10.0
    read: float = 60.0
    total: float = 600.0


class HTTPResponse(abc.ABC):
    """An open response: status and headers are known, the body is not read yet."""

    status: int
    #: Lower-cased header names.
    headers: Mapping[str, str]

    @abc.abstractmethod
    async def read(self) -> bytes:
        """The whole body (then the connection goes back to the pool)."""

    @abc.abstractmethod
    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body as it arrives, in whatever pieces the network gives."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Give the connection back (or drop it if the body was not consumed)."""


class HTTPClient(abc.ABC):
    """A pooled async HTTP client shared by every provider of an engine."""

    backend: str = ""

    @abc.abstractmethod
    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        timeouts: Timeouts = Timeouts(),
    ) -> HTTPResponse:
        """Send a request and return once the status line and headers arrived."""

    @abc.abstractmethod
    async def aclose(self) -> None: ...


# -- aiohttp (asyncio) ---------------------------------------------------------------


class _AiohttpResponse(HTTPResponse):
    def __init__(self, response: Any) -> None:
        self._response = response
        self.status = response.status
        # aiohttp's headers are already case-insensitive: no per-response copy.
        self.headers = response.headers

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except Exception as exc:
            raise _aiohttp_error(exc) from exc
        finally:
            self._response.release()

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for data in self._response.content.iter_any():
                yield data
        except Exception as exc:
            raise _aiohttp_error(exc) from exc

    async def aclose(self) -> None:
        self._response.close() if not self._response.content.at_eof() else self._response.release()


def _aiohttp_error(exc: BaseException) -> Exception:
    import asyncio

    import aiohttp

    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError | TimeoutError):
        return UpstreamTimeoutError(f"upstream timed out ({type(exc).__name__})")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return UpstreamConnectionError(f"upstream connection failed: {type(exc).__name__}: {exc}")
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


class AiohttpClient(HTTPClient):
    backend = "aiohttp"

    def __init__(self, *, max_connections: int = 1000) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        connector = aiohttp.TCPConnector(
            limit=max_connections, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=30
        )
        self._timeouts: dict[Timeouts, Any] = {}
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, skip_auto_headers=("User-Agent",)
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        timeouts: Timeouts = Timeouts(),
    ) -> HTTPResponse:
        timeout = self._timeouts.get(timeouts)
        if timeout is None:  # one ClientTimeout per distinct setting, not per request
            timeout = self._timeouts[timeouts] = self._aiohttp.ClientTimeout(
                total=None, sock_connect=timeouts.connect, sock_read=timeouts.read
            )
        try:
            response = await self._session.request(
                method, url, headers=headers, data=content, timeout=timeout
            )
        except Exception as exc:
            raise _aiohttp_error(exc) from exc
        return _AiohttpResponse(response)

    async def aclose(self) -> None:
        await self._session.close()


# -- httpx (trio, and anywhere aiohttp is missing) -------------------------------------


class _HttpxResponse(HTTPResponse):
    def __init__(self, response: Any) -> None:
        self._response = response
        self.status = response.status_code
        self.headers = {k.lower(): v for k, v in response.headers.items()}

    async def read(self) -> bytes:
        try:
            return await self._response.aread()
        except Exception as exc:
            raise _httpx_error(exc) from exc
        finally:
            await self._response.aclose()

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for data in self._response.aiter_raw():
                yield data
        except Exception as exc:
            raise _httpx_error(exc) from exc

    async def aclose(self) -> None:
        await self._response.aclose()


def _httpx_error(exc: BaseException) -> Exception:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeoutError(f"upstream timed out ({type(exc).__name__})")
    if isinstance(exc, httpx.TransportError | OSError):
        return UpstreamConnectionError(f"upstream connection failed: {type(exc).__name__}: {exc}")
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


class HttpxClient(HTTPClient):
    backend = "httpx"

    def __init__(self, *, max_connections: int = 1000) -> None:
        import httpx

        self._httpx = httpx
        self._client = httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=30,
            ),
            follow_redirects=False,
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        timeouts: Timeouts = Timeouts(),
    ) -> HTTPResponse:
        timeout = self._httpx.Timeout(
            connect=timeouts.connect, read=timeouts.read, write=timeouts.read, pool=timeouts.connect
        )
        request = self._client.build_request(
            method, url, headers=dict(headers or {}), content=content, timeout=timeout
        )
        try:
            response = await self._client.send(request, stream=True)
        except Exception as exc:
            raise _httpx_error(exc) from exc
        return _HttpxResponse(response)

    async def aclose(self) -> None:
        await self._client.aclose()


def open_http_client(*, backend: str | None = None, max_connections: int = 1000) -> HTTPClient:
    """The fastest client for the running event loop (``backend`` forces one)."""
    if backend is None:
        try:
            library = sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            library = "asyncio"
        backend = "aiohttp" if library == "asyncio" else "httpx"
        if backend == "aiohttp":
            try:
                import aiohttp  # noqa: F401
            except ImportError:
                backend = "httpx"
    if backend == "aiohttp":
        return AiohttpClient(max_connections=max_connections)
    if backend == "httpx":
        return HttpxClient(max_connections=max_connections)
    raise ValueError(f"unknown HTTP backend {backend!r}: use 'aiohttp' or 'httpx'")
