"""Marketo's limits through the wire: rate window, concurrency, token refresh, daily quota and budget, retries."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_fbmkto.exceptions import ApiError, AuthError, QuotaExhausted, TransportError
from airflow_provider_fbmkto.hooks.marketo import MarketoHook
from airflow_provider_fbmkto.hooks.marketo_auth import TOKENS
from airflow_provider_fbmkto.hooks.marketo_limits import reset_process_state
from airflow_provider_fbmkto.state import BudgetExhausted
from airflow_provider_fbmkto.testing.marketo import MarketoEmulator

IDENTITY = "/identity/oauth/token"

MakeMarketo = Callable[..., MarketoEmulator]


def leads(n: int) -> list[dict[str, Any]]:
    return [{"email": f"user{i}@example.com", "firstName": f"U{i}"} for i in range(n)]


def invoice_sent(lead_id: int, type_id: int) -> dict[str, Any]:
    """One custom activity body for ``lead_id``."""
    return {
        "leadId": lead_id,
        "activityDate": "2025-03-01T10:00:00+00:00",
        "activityTypeId": type_id,
        "primaryAttributeValue": "INV-1",
    }


def codes(emu: MarketoEmulator) -> list[str]:
    return [code for call in emu.rest_calls() for code in call.codes]


def test_1000_writes_use_the_minimum_calls_and_absorb_forced_606_615(marketo: MarketoEmulator) -> None:
    marketo.inject_fault("606", path_prefix="/rest/v1/leads.json")
    marketo.inject_fault("615", path_prefix="/rest/v1/leads.json")
    results = MarketoHook().upsert_leads(leads(1000))

    assert [r.index for r in results] == list(range(1000))
    assert {r.status for r in results} == {"created"}
    assert len({r.id for r in results}) == 1000
    assert len(marketo.leads()) == 1000
    identity = [c for c in marketo.calls if c.path == IDENTITY]
    writes = [c for c in marketo.rest_calls() if c.path == "/rest/v1/leads.json"]
    forced = [c for c in writes if c.codes]
    assert sorted(code for c in forced for code in c.codes) == ["606", "615"]
    assert len(identity) == 1
    assert len(writes) == math.ceil(1000 / 300) + len(forced)
    assert all(len(c.body["input"]) <= 300 for c in writes)
    assert all(c.bearer for c in writes)


def test_bursts_from_many_threads_stay_inside_the_rate_window(make_marketo: MakeMarketo) -> None:
    # Three places per 1 s window (the token takes one) against Marketo's five: seven calls need two window turns,
    # and the instance refuses one only if five arrived within one second. Unshared limiters would send all six
    # at once (each hook's token and two calls fit its own three places): a 606 and no wait. Each call is counted
    # from its answer, so however late a starved CI machine's emulator thread takes a request in, it cannot count
    # it in a window this side has already left.
    emu = make_marketo(rate_limit=5, conn={"calls_per_window": 3})
    hooks = [MarketoHook() for _ in range(3)]
    started = time.monotonic()
    threads = [threading.Thread(target=lambda h=h: [h.describe_leads() for _ in range(2)]) for h in hooks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    elapsed = time.monotonic() - started

    assert len(emu.rest_calls()) == 6
    assert "606" not in codes(emu)
    assert elapsed >= 1.9  # 6 calls and the token at 3 per 1 s window need two window turns


def test_twenty_threads_never_exceed_the_concurrency_limit(make_marketo: MakeMarketo) -> None:
    emu = make_marketo(latency=0.25)
    barrier = threading.Barrier(20)
    errors: list[BaseException] = []

    def work() -> None:
        hook = MarketoHook()  # each thread its own hook: the limiter is shared per instance
        barrier.wait()
        try:
            hook.upsert_leads(leads(3))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert errors == []
    assert len(emu.rest_calls()) == 20
    assert 2 <= emu.max_in_flight <= 8  # the hook's default max_concurrency, under Marketo's 10
    assert "615" not in codes(emu)


@pytest.mark.parametrize("code", ["601", "602"])
def test_token_errors_are_recovered_with_one_new_token(marketo: MarketoEmulator, code: str) -> None:
    hook = MarketoHook()
    hook.describe_leads()
    if code == "602":
        marketo.model.tokens.expire_all()  # the real thing: the cached token has expired server-side
    else:
        marketo.inject_fault("601")
    fields = hook.describe_leads()

    assert any(f["name"] == "email" for f in fields)
    assert [c.codes for c in marketo.rest_calls()] == [[], [code], []]
    assert len([c for c in marketo.calls if c.path == IDENTITY]) == 2


def test_a_token_refused_twice_is_an_auth_error(marketo: MarketoEmulator) -> None:
    marketo.inject_fault("601", count=2)
    with pytest.raises(AuthError, match="601") as err:
        MarketoHook().describe_leads()
    assert len(marketo.rest_calls()) == 2  # one transparent retry, not more
    assert "mkto-client-secret" not in str(err.value)


def test_607_stops_at_once_with_the_clear_error(marketo: MarketoEmulator) -> None:
    marketo.inject_fault("607")
    hook = MarketoHook()
    with pytest.raises(QuotaExhausted) as err:
        hook.upsert_leads(leads(5))
    assert str(err.value) == (
        f"Marketo daily API quota (607) is exhausted for {marketo.url}; nothing more will be sent until it "
        "resets at midnight US/Central"
    )
    assert len(marketo.rest_calls()) == 1  # not retried
    with pytest.raises(QuotaExhausted):
        MarketoHook().describe_leads()  # another hook of the process sends nothing either
    assert len(marketo.rest_calls()) == 1


def test_daily_budget_is_shared_and_refunds_uncounted_codes(make_marketo: MakeMarketo) -> None:
    emu = make_marketo(conn={"daily_budget": 6, "budget_reserve": 2})
    hook = MarketoHook()
    emu.inject_fault("604")  # Marketo does not count 604: neither do we
    hook.describe_leads()
    assert [c.codes for c in emu.rest_calls()] == [["604"], []]
    assert hook.budget_used() == 1
    MarketoHook().describe_leads()
    MarketoHook().describe_leads()
    MarketoHook().describe_leads()
    assert hook.budget_used() == 4
    with pytest.raises(BudgetExhausted, match="4 of 4 calls used"):
        MarketoHook().describe_leads()
    assert len(emu.rest_calls()) == 5  # the refused call never left the process


def test_5xx_is_retried_with_backoff(marketo: MarketoEmulator) -> None:
    marketo.inject_fault("503", count=2)
    marketo.inject_fault("713")
    fields = MarketoHook().describe_leads()
    assert fields
    assert [c.status for c in marketo.rest_calls()] == [503, 503, 200, 200]
    assert [c.codes for c in marketo.rest_calls()][2] == ["713"]


def test_read_timeout_retries_idempotent_calls_but_not_activity_writes(make_marketo: MakeMarketo) -> None:
    emu = make_marketo(timeout_fault_seconds=1.0, conn={"request_timeout": 0.3})
    type_id = emu.create_activity_type_direct("fbInvoiceSent")
    hook = MarketoHook()
    lead = hook.upsert_leads(leads(1))[0].id
    emu.inject_fault("timeout", path_prefix="/rest/v1/leads.json")
    assert hook.upsert_leads(leads(2))[1].status == "created"  # createOrUpdate is safe to resend
    activity = invoice_sent(lead, type_id)
    emu.inject_fault("timeout", path_prefix="/rest/v1/activities/external.json")
    with pytest.raises(TransportError, match="may have been applied") as err:
        hook.add_activities([activity])
    assert err.value.sent is True
    deadline = time.monotonic() + 5
    while not emu.activities() and time.monotonic() < deadline:  # the stalled write lands after 1 s
        time.sleep(0.05)
    assert len(emu.activities()) == 1  # it was applied: a resend would have written it twice
    assert len([c for c in emu.rest_calls() if c.path == "/rest/v1/activities/external.json"]) == 1


def test_marketo_timeouts_are_not_resent_for_activity_writes(marketo: MarketoEmulator) -> None:
    type_id = marketo.create_activity_type_direct("fbInvoiceSent")
    hook = MarketoHook()
    lead = hook.upsert_leads(leads(1))[0].id
    marketo.inject_fault("604", path_prefix="/rest/v1/leads.json")
    assert hook.upsert_leads(leads(1))[0].status == "updated"  # resent after 604: idempotent
    marketo.inject_fault("604", path_prefix="/rest/v1/activities/external.json")
    activity = invoice_sent(lead, type_id)
    with pytest.raises(ApiError, match="604 Request timed out; it may have been applied") as err:
        hook.add_activities([activity])
    assert err.value.retryable is True
    marketo.inject_fault("608", path_prefix="/rest/v1/activities/external.json")
    assert hook.add_activities([activity])[0].status == "added"  # 608: unavailable, nothing was done: resent
    writes = [c.codes for c in marketo.rest_calls() if c.path == "/rest/v1/activities/external.json"]
    assert writes == [["604"], ["608"], []]


def test_an_answer_cut_short_is_a_write_that_may_have_landed_and_is_not_resent(marketo: MarketoEmulator) -> None:
    # HTTP 200 with half a JSON body (a dropped proxy connection): Marketo did the work, the client cannot tell what.
    type_id = marketo.create_activity_type_direct("fbInvoiceSent")
    hook = MarketoHook()
    lead = hook.upsert_leads(leads(1))[0].id
    activity = invoice_sent(lead, type_id)
    marketo.inject_fault("garbled", path_prefix="/rest/v1/activities/external.json")
    with pytest.raises(TransportError, match=r"HTTP 200 answer is not a JSON object.*may have been applied") as err:
        hook.add_activities([activity])
    assert err.value.sent is True  # the loader reads such a batch back instead of sending it again
    assert len(marketo.activities()) == 1
    assert len([c for c in marketo.rest_calls() if c.path == "/rest/v1/activities/external.json"]) == 1
    marketo.inject_fault("garbled", path_prefix="/rest/v1/leads/describe2.json")
    assert hook.describe_leads()  # a read is simply sent again
    assert [c.path for c in marketo.rest_calls()].count("/rest/v1/leads/describe2.json") == 2


def test_a_nearly_dead_token_is_used_or_waited_out_never_trusted_blindly(make_marketo: MakeMarketo) -> None:
    offset = [0.0]
    emu = make_marketo(clock=lambda: datetime.now(timezone.utc) + timedelta(seconds=offset[0]))
    MarketoHook().describe_leads()
    first = next(iter(TOKENS._tokens.values())).token

    reset_process_state()  # a fresh process: nothing cached
    offset[0] = 3600 - 2.5  # the instance's token has 2 s left: enough for a call (scaled margin 3 s)
    MarketoHook().describe_leads()
    assert next(iter(TOKENS._tokens.values())).token == first

    reset_process_state()
    offset[0] = 3600 - 0.5  # Marketo answers the same token with expires_in 0: wait it out, then ask again
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        offset[0] += seconds

    MarketoHook(sleep=sleep).describe_leads()
    assert slept == [1.0]
    assert next(iter(TOKENS._tokens.values())).token != first
    assert [c.codes for c in emu.rest_calls()] == [[], [], []]  # no call was refused with 601/602
    assert len([c for c in emu.calls if c.path == IDENTITY]) == 4
