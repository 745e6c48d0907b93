"""The instance's usage today, the run's call allowance, and codes told apart by meaning (1029's three, 614, 719)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone

import pytest

from airflow_provider_fbmkto.exceptions import ApiError, ConfigError, QuotaExhausted
from airflow_provider_fbmkto.hooks.marketo import MarketoHook
from airflow_provider_fbmkto.hooks.marketo_limits import ApiUsage, calls_left_today
from airflow_provider_fbmkto.hooks.marketo_types import (
    ExportQuotaExhausted,
    ExportState,
    InvalidSubscription,
    Verdict,
    classify_answer,
)
from airflow_provider_fbmkto.testing.marketo import MarketoEmulator

MakeMarketo = Callable[..., MarketoEmulator]
ENQUEUE = "/enqueue.json"


def _export(hook: MarketoHook) -> str:
    hook.upsert_leads([{"email": "a@example.com"}])
    now = datetime.now(timezone.utc)
    return hook.create_lead_export(["id", "email"], now - timedelta(days=1), now + timedelta(hours=1))


def test_usage_today_counts_every_integration_of_the_instance(make_marketo: MakeMarketo) -> None:
    emu = make_marketo(api_user="fbmkto@acme.com")
    hook = MarketoHook()
    hook.describe_leads()
    emu.spend_other_usage(40_000, "crm-sync@acme.com")

    usage = hook.usage_today()

    assert usage.total == 40_002  # the other integration's calls, the describe and the usage call itself
    assert (usage.mine, usage.others, usage.api_user) == (2, 40_000, "fbmkto@acme.com")
    assert usage.users == {"crm-sync@acme.com": 40_000, "fbmkto@acme.com": 2}
    assert usage.day == date.fromisoformat(emu.usage_today()["date"])
    assert [c.path for c in emu.rest_calls()] == ["/rest/v1/leads/describe2.json", "/rest/v1/stats/usage.json"]


def test_usage_answers_read_leniently() -> None:
    listed = [{"date": "2025-03-03T00:00:00Z", "users": [{"userId": "a", "count": 3}, {"userId": "b", "count": 4}]}]
    assert ApiUsage.from_marketo(listed, api_user="c") == ApiUsage(date(2025, 3, 3), 7, {"a": 3, "b": 4}, "c")
    assert ApiUsage.from_marketo(listed, api_user="c").mine is None  # not listed: unknown, not 0
    assert ApiUsage.from_marketo([]).total == 0


@pytest.mark.parametrize(
    ("instance_used", "daily_budget", "reserve", "own_used", "left"),
    [
        (0, 45_000, 0, 0, 45_000),
        (40_000, 45_000, 0, 0, 5_000),  # another integration spent most of the day
        (40_000, 45_000, 5_000, 0, 0),  # ... and the reserve takes the rest: stop
        (44_999, 45_000, 0, 0, 1),
        (50_000, 45_000, 1_000, 0, 0),  # past the budget: 0, never negative
        (100, 45_000, 0, 300, 44_700),  # our own count is ahead of Marketo's: the larger counts
    ],
)
def test_calls_left_today(instance_used: int, daily_budget: int, reserve: int, own_used: int, left: int) -> None:
    assert calls_left_today(instance_used, daily_budget=daily_budget, budget_reserve=reserve, own_used=own_used) == left


def test_calls_left_today_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="budget_reserve"):
        calls_left_today(0, daily_budget=100, budget_reserve=100)
    with pytest.raises(ValueError, match=">= 0"):
        calls_left_today(-1, daily_budget=100)


@pytest.mark.parametrize(
    ("codes", "message", "verdict"),
    [
        (["1029"], "1029 Too many jobs in queue", Verdict.QUEUE_FULL),
        (["1029"], "", Verdict.QUEUE_FULL),
        (["1029"], "1029 Export daily quota exceeded", Verdict.OK),
        (["1029"], "1029 Job already queued", Verdict.OK),
        (["614"], "614 Invalid Subscription", Verdict.OK),
        (["719"], "719 Lock wait timeout exception", Verdict.BACKOFF),
    ],
)
def test_verdicts_read_the_message_where_the_code_has_several_meanings(
    codes: list[str], message: str, verdict: Verdict
) -> None:
    assert classify_answer(200, codes, message) is verdict


def test_a_spent_export_quota_stops_at_once_with_the_reset(marketo: MarketoEmulator) -> None:
    hook = MarketoHook()
    export_id = _export(hook)
    marketo.inject_fault(
        "1029", path_prefix=f"/bulk/v1/leads/export/{export_id}{ENQUEUE}", message="Export daily quota exceeded"
    )

    with pytest.raises(ExportQuotaExhausted, match="midnight US Central") as err:
        hook.enqueue_export(export_id)

    assert isinstance(err.value, QuotaExhausted)
    assert err.value.retryable is False
    assert err.value.resets_at > datetime.now(timezone.utc)
    assert [c.codes for c in marketo.rest_calls() if c.path.endswith(ENQUEUE)] == [["1029"]]  # not resent


def test_a_spent_export_quota_refuses_the_create_too(make_marketo: MakeMarketo) -> None:
    now = [datetime.now(timezone.utc)]
    emu = make_marketo(clock=lambda: now[0], bulk_daily_bytes=1, bulk_step_seconds=1)
    hook = MarketoHook()
    export_id = _export(hook)
    hook.enqueue_export(export_id)
    now[0] += timedelta(seconds=3)  # Queued -> Processing -> Completed on the emulator's clock
    assert hook.export_status(export_id).state is ExportState.COMPLETED
    with pytest.raises(ExportQuotaExhausted):
        hook.create_lead_export(["id"], now[0] - timedelta(days=1), now[0])
    assert [c.codes for c in emu.rest_calls() if c.path.endswith("create.json")] == [[], ["1029"]]


def test_an_export_already_queued_is_reused(marketo: MarketoEmulator) -> None:
    hook = MarketoHook()
    export_id = _export(hook)
    assert hook.enqueue_export(export_id).state is ExportState.QUEUED

    again = hook.enqueue_export(export_id)  # a task retried after its enqueue landed

    assert again.export_id == export_id
    assert again.state in (ExportState.QUEUED, ExportState.PROCESSING, ExportState.COMPLETED)
    bulk = [(c.path.rsplit("/", 1)[-1], c.codes) for c in marketo.rest_calls() if c.path.startswith("/bulk")]
    assert bulk == [("create.json", []), ("enqueue.json", []), ("enqueue.json", ["1029"]), ("status.json", [])]
    assert len(marketo.model.exports.jobs) == 1


def test_614_is_a_configuration_error_naming_the_host_and_not_retried(marketo: MarketoEmulator) -> None:
    marketo.inject_fault("614")
    with pytest.raises(InvalidSubscription, match="Munchkin id") as err:
        MarketoHook().describe_leads()
    assert isinstance(err.value, ConfigError)
    assert marketo.url in str(err.value)
    assert [c.codes for c in marketo.rest_calls()] == [["614"]]


def test_719_is_retried_for_reads_and_not_resent_for_activity_writes(marketo: MarketoEmulator) -> None:
    type_id = marketo.create_activity_type_direct("fbInvoiceSent")
    hook = MarketoHook()
    lead = hook.upsert_leads([{"email": "a@example.com"}])[0].id
    marketo.inject_fault("719", path_prefix="/rest/v1/leads/describe2.json")
    assert hook.describe_leads()
    marketo.inject_fault("719", path_prefix="/rest/v1/activities/external.json")
    activity = {"leadId": lead, "activityDate": "2025-03-01T10:00:00+00:00", "activityTypeId": type_id}
    with pytest.raises(ApiError, match="may have been applied") as err:
        hook.add_activities([{**activity, "primaryAttributeValue": "INV-1"}])
    assert err.value.retryable is True
    calls = [(c.path, c.codes) for c in marketo.rest_calls() if c.path != "/rest/v1/leads.json"]
    assert calls == [
        ("/rest/v1/leads/describe2.json", ["719"]),
        ("/rest/v1/leads/describe2.json", []),
        ("/rest/v1/activities/external.json", ["719"]),
    ]


def test_the_hook_stops_before_the_instance_passes_its_budget(make_marketo: MakeMarketo) -> None:
    """Another integration spent 990 calls of a 1,000-call budget: this provider sends what is left, then stops."""
    emu = make_marketo(conn={"daily_budget": 1000})
    emu.spend_other_usage(990, "crm-sync@acme.com")
    hook = MarketoHook()
    usage = hook.count_other_integrations()
    assert (usage.total, hook.others_today) == (991, 990)  # the usage call itself is ours

    for i in range(9):  # 1000 - 990 others - 1 usage call
        hook.upsert_leads([{"email": f"p{i}@example.com"}])
    with pytest.raises(QuotaExhausted, match="990 calls other integrations made on the instance today"):
        hook.upsert_leads([{"email": "one-too-many@example.com"}])
    assert emu.usage_today()["total"] == 1000  # the instance as a whole never passed the budget
