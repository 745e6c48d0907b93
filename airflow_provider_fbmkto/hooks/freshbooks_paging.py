"""Paging a FreshBooks list endpoint: the first page says how many there are, the rest may be fetched ahead."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

Page = dict[str, Any]


def paged(fetch: Callable[[int], Page], key: str, concurrency: int) -> Iterator[dict[str, Any]]:
    """The objects under ``key`` of every page, in order.

    The first page's ``pages`` says how many there are (whatever page size the server applied); the rest are
    fetched up to ``concurrency`` at a time (each page waits mostly on the network), so at most that many
    pages are held in memory. An empty page ends the listing (it shrank while we paged).

    :param fetch: returns the ``result`` of one page (1-based).
    :param key: the list's key in ``result`` (``invoices``, ``clients``, …).
    :param concurrency: pages in flight at once; 1 pages one after the other.
    """
    first = fetch(1)
    items = first.get(key) or []
    yield from items
    pages = int(first.get("pages") or 1)
    if not items or pages <= 1:
        return
    if concurrency <= 1:
        for page in range(2, pages + 1):
            result = fetch(page)
            items = result.get(key) or []
            yield from items
            if not items or page >= int(result.get("pages") or 1):
                return
        return
    with ThreadPoolExecutor(concurrency, thread_name_prefix="fbmkto-fb-pages") as pool:
        ahead: deque[Future[Page]] = deque()
        following = 2
        try:
            while ahead or following <= pages:
                while following <= pages and len(ahead) < concurrency:
                    ahead.append(pool.submit(fetch, following))
                    following += 1
                items = ahead.popleft().result().get(key) or []
                yield from items
                if not items:  # the listing shrank while we paged: nothing further
                    return
        finally:
            for future in ahead:
                future.cancel()
