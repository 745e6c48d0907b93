"""Workers meeting one expired access token: exactly one refresh reaches FreshBooks, nobody is locked out."""

from __future__ import annotations

import multiprocessing
import os
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import fb_workers
import pytest
from conftest import grant, hook, stored_pair

from airflow_provider_fbmkto.state import StateDB, TokenPair, TokenStore
from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator

WORKERS = 8
CLIENTS = 5


def _setup(emu: FreshBooksEmulator) -> tuple[TokenStore, TokenPair]:
    for i in range(CLIENTS):
        emu.add_client(email=f"p{i}@example.com")
    tokens = StateDB.from_airflow().tokens
    return tokens, stored_pair()


def _assert_one_refresh(emu: FreshBooksEmulator, before: int, tokens: TokenStore, old: TokenPair) -> None:
    refreshes = emu.token_calls()[before:]
    assert len(refreshes) == 1
    assert refreshes[0].status == 200
    assert grant(refreshes[0]) == "refresh_token"
    stored = stored_pair()
    assert stored.refresh_token != old.refresh_token
    assert stored.access_token in emu.oauth.access


@pytest.mark.timeout(180)
def test_eight_processes_with_an_expired_token_refresh_once(authorized: FreshBooksEmulator, tmp_path: Path) -> None:
    tokens, pair = _setup(authorized)
    past = datetime.now(timezone.utc) - timedelta(minutes=1)
    tokens.save("freshbooks_default", TokenPair(pair.access_token, pair.refresh_token, past, pair.scope))
    authorized.expire_access_tokens()  # the server agrees: the old token is dead
    before = len(authorized.token_calls())

    env = {k: v for k, v in os.environ.items() if k.startswith(("AIRFLOW", "FBMKTO"))}
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    procs = [
        ctx.Process(target=fb_workers.iterate_clients, args=(env, barrier, str(tmp_path), i)) for i in range(WORKERS)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(150)
        assert p.exitcode == 0

    results = sorted((tmp_path / f"{i}.txt").read_text() for i in range(WORKERS))
    assert results == [f"ok {CLIENTS}"] * WORKERS
    _assert_one_refresh(authorized, before, tokens, pair)


def test_eight_threads_hit_by_401_refresh_once(authorized: FreshBooksEmulator) -> None:
    tokens, pair = _setup(authorized)
    hooks = [hook() for _ in range(WORKERS)]
    for h in hooks:
        h.tokens.access_token()  # each caches the soon-dead token
    authorized.expire_access_tokens()
    before = len(authorized.token_calls())
    barrier = threading.Barrier(WORKERS)
    results: list[object] = [None] * WORKERS

    def work(i: int) -> None:
        barrier.wait(30)
        try:
            results[i] = sum(1 for _ in hooks[i].iter_clients())
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [CLIENTS] * WORKERS
    _assert_one_refresh(authorized, before, tokens, pair)
    statuses = [c.status for c in authorized.calls if c.path.endswith("/users/clients")][-2 * WORKERS :]
    assert statuses.count(401) == WORKERS  # every worker was refused once, then continued
