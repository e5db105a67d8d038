"""Request bodies with a size limit: a 413 with the JSON error, never a reset connection.

The limit is checked before anything is buffered: the declared ``Content-Length`` first, then
the running size of the stream. A client that keeps its connection alive gets the 413 at once;
the HTTP server discards the rest of its upload. A client that asked to close the connection
(``Connection: close``, or HTTP/1.0; e.g. Python's ``urllib``) usually sends its whole body
before it reads the answer, and the server closes the socket right after answering: with upload
bytes still unread, the kernel then resets the connection and the client sees
``Connection reset by peer`` instead of the 413. For those clients the rest of the body is read
and discarded (up to ``MAX_DRAIN_BYTES``) before the answer goes out.
"""

from fastapi import Request
from starlette.requests import ClientDisconnect

from incdyn.platform.serve.codec import RequestError

MAX_DRAIN_BYTES = 2**30  # beyond this much discarded upload, answer anyway (the client may reset)


def closes_after_response(request: Request) -> bool:
    """Whether the server will close the connection once it has answered this request."""
    tokens = request.headers.get("connection", "").lower().replace(" ", "").split(",")
    return "close" in tokens or request.scope.get("http_version") == "1.0"


async def _discard(chunks, limit: int) -> None:
    drained = 0
    try:
        async for chunk in chunks:
            drained += len(chunk)
            if drained > limit:
                return
    except ClientDisconnect:
        return


async def read_body(request: Request, limit: int) -> bytes:
    """The body of ``request``, or :class:`RequestError` (413) as soon as it is over ``limit``."""
    chunks = request.stream()
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        error = RequestError(f"body of {declared} bytes is over the limit of {limit} bytes", 413)
    else:
        parts, size, error = [], 0, None
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                error = RequestError(f"body is over the limit of {limit} bytes", 413)
                break
            parts.append(chunk)
        if error is None:
            return b"".join(parts)
    if closes_after_response(request):
        await _discard(chunks, MAX_DRAIN_BYTES)
    raise error
