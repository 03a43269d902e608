"""Fetching a thread's stored messages over HTTP (PROTOCOL section 7 pages).

The endpoint is clowder-ai's: ``GET {url}/api/messages?threadId=..&limit=..&before=ts:id``
with the header ``X-Cat-Cafe-User``, answering ``{"messages": [...], "hasMore": bool}``
(the newest ``limit`` messages before the cursor, oldest first). The server filters
the messages by that user id, which is why the client's user id matters.
"""

from __future__ import annotations

from typing import Any

from reconcile import ReconcileError

__all__ = ["HistoryError", "fetch_history", "is_draft"]


class HistoryError(ReconcileError):
    """The history endpoint failed or answered something that is not a history page.

    Attributes:
        status: the HTTP status of the answer, or ``None`` when there was none
            (network error, timeout, malformed body). A ``404`` after a reconnect
            means the server no longer knows the thread (see ``ChatClient``).
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def is_draft(message: Any) -> bool:
    """Whether a stored message is a draft (a turn still running), as section 7 says."""
    if not isinstance(message, dict):
        return False
    message_id = message.get("id")
    return message.get("isDraft") is True or (
        isinstance(message_id, str) and message_id.startswith("draft-")
    )


async def fetch_history(
    session: Any,
    url: str,
    user_id: str,
    thread: str,
    *,
    limit: int = 50,
    max_pages: int = 20,
    timeout: float = 10.0,
    loads: Any = None,
) -> list[list[Any]]:
    """Fetch a thread's stored messages, newest page first, following ``hasMore``.

    Args:
        session: an ``aiohttp.ClientSession``.
        url: the server's base URL (``http://host:port``).
        user_id: sent as ``X-Cat-Cafe-User``.
        thread: the thread id.
        limit: messages per page (the server caps it, clowder at 200).
        max_pages: stop after this many pages even if the server has more.
        timeout: seconds per request.
        loads: the JSON decoder for the body (default: the standard library's).

    Returns:
        The pages, **newest first**, each a list of messages oldest first as the
        server sent them. Apply them in reverse order.

    Raises:
        HistoryError: a non-200 answer, a network error, or a malformed body.
    """
    import json

    import aiohttp

    decode = loads if loads is not None else json.loads
    pages: list[list[Any]] = []
    before: str | None = None
    endpoint = f"{url.rstrip('/')}/api/messages"
    headers = {"X-Cat-Cafe-User": user_id}
    for _ in range(max(1, max_pages)):
        params = {"threadId": thread, "limit": str(limit)}
        if before is not None:
            params["before"] = before
        try:
            async with session.get(
                endpoint,
                params=params,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                if response.status != 200:
                    text = (await response.text())[:200]
                    raise HistoryError(
                        f"GET {endpoint} -> HTTP {response.status}: {text}", response.status
                    )
                body = decode(await response.text())
        except (TimeoutError, aiohttp.ClientError, ValueError, RecursionError) as exc:
            raise HistoryError(f"GET {endpoint}: {exc or type(exc).__name__}") from exc
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list):
            raise HistoryError(f"GET {endpoint}: no 'messages' list in the answer")
        pages.append(messages)
        if body.get("hasMore") is not True:
            break
        # The cursor is the oldest stored (non-draft) message of this page: ts:id.
        cursor = next(
            (
                m
                for m in messages
                if isinstance(m, dict)
                and not is_draft(m)
                and type(m.get("timestamp")) is int
                and isinstance(m.get("id"), str)
            ),
            None,
        )
        if cursor is None:
            break
        before = f"{cursor['timestamp']}:{cursor['id']}"
    return pages
