"""The Marketo emulator's rules, one test per rule, through real HTTP with plain ``requests``."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from airflow_provider_fbmkto.testing.marketo import MarketoEmulator

CLIENT = {"grant_type": "client_credentials", "client_id": "mkto-client-id", "client_secret": "mkto-client-secret"}


class FakeClock:
    """A settable UTC clock for the emulator."""

    def __init__(self, start: datetime = datetime(2025, 3, 3, 12, 0, tzinfo=timezone.utc)) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mkto_emu(clock: FakeClock) -> Iterator[MarketoEmulator]:
    with MarketoEmulator(clock=clock, window_seconds=1.0) as emu:
        yield emu


def token(emu: MarketoEmulator) -> str:
    r = requests.get(f"{emu.url}/identity/oauth/token", params=CLIENT, timeout=5)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


class Api:
    """Bearer-authenticated calls to one emulator."""

    def __init__(self, emu: MarketoEmulator) -> None:
        self.emu = emu
        self.headers = {"Authorization": f"Bearer {token(emu)}"}

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        headers = {**self.headers, **kw.pop("headers", {})}
        return requests.request(method, f"{self.emu.url}{path}", headers=headers, timeout=10, **kw)

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        r = self.call("GET", path, params=params)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def post(self, path: str, body: Any = None) -> dict[str, Any]:
        r = self.call("POST", path, json=body)
        assert r.status_code == 200, r.text
        return dict(r.json())


@pytest.fixture
def api(mkto_emu: MarketoEmulator) -> Api:
    return Api(mkto_emu)


def codes(body: dict[str, Any]) -> list[str]:
    return [e["code"] for e in body.get("errors", [])]


def lead_ids(api: Api, *emails: str) -> list[int]:
    body = api.post("/rest/v1/leads.json", {"input": [{"email": e} for e in emails]})
    return [r["id"] for r in body["result"]]


# -- identity and tokens ------------------------------------------------------------------------------


def test_identity_answers_a_bearer_token(mkto_emu: MarketoEmulator) -> None:
    body = requests.get(f"{mkto_emu.url}/identity/oauth/token", params=CLIENT, timeout=5).json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600


def test_token_is_reused_with_its_remaining_life_until_it_expires(mkto_emu: MarketoEmulator, clock: FakeClock) -> None:
    def ask() -> dict[str, Any]:
        return dict(requests.get(f"{mkto_emu.url}/identity/oauth/token", params=CLIENT, timeout=5).json())

    first = ask()
    clock.advance(1000.4)
    second = ask()
    assert second["access_token"] == first["access_token"]
    assert second["expires_in"] == 2599
    clock.advance(2599.5)  # 0.1 s of life left
    nearly_dead = ask()
    assert (nearly_dead["access_token"], nearly_dead["expires_in"]) == (first["access_token"], 0)
    clock.advance(0.2)
    fresh = ask()
    assert fresh["access_token"] != first["access_token"]
    assert fresh["expires_in"] == 3600


def test_bad_client_credentials_answer_http_401(mkto_emu: MarketoEmulator) -> None:
    r = requests.get(f"{mkto_emu.url}/identity/oauth/token", params={**CLIENT, "client_secret": "wrong"}, timeout=5)
    assert r.status_code == 401
    assert r.json() == {"error": "unauthorized", "error_description": "Bad client credentials"}


def test_access_token_query_parameter_is_refused_even_with_a_good_header(api: Api) -> None:
    tok = api.headers["Authorization"].split()[1]
    r = api.call("GET", "/rest/v1/leads/describe2.json", params={"access_token": tok})
    assert r.status_code == 200
    assert r.json()["success"] is False
    assert r.json()["errors"] == [{"code": "601", "message": "Access token invalid"}]
    plain = requests.get(f"{api.emu.url}/rest/v1/leads/describe2.json", params={"access_token": tok}, timeout=5)
    assert codes(plain.json()) == ["601"]


def test_missing_or_unknown_token_is_601(mkto_emu: MarketoEmulator) -> None:
    url = f"{mkto_emu.url}/rest/v1/leads/describe2.json"
    assert codes(requests.get(url, timeout=5).json()) == ["601"]
    bad = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=5)
    assert bad.status_code == 200
    assert codes(bad.json()) == ["601"]


def test_expired_token_is_602(api: Api, clock: FakeClock) -> None:
    assert api.get("/rest/v1/leads/describe2.json")["success"] is True
    clock.advance(3600)
    r = api.call("GET", "/rest/v1/leads/describe2.json")
    assert r.status_code == 200
    assert r.json()["errors"] == [{"code": "602", "message": "Access token expired"}]


# -- envelope -----------------------------------------------------------------------------------------


def test_envelope_has_request_id_success_result_and_string_codes(api: Api) -> None:
    ok = api.get("/rest/v1/leads/describe2.json")
    assert re.fullmatch(r"[0-9a-f]+#[0-9a-f]+", ok["requestId"])
    assert ok["success"] is True
    assert isinstance(ok["result"], list)
    assert ok["warnings"] == []
    bad = api.post("/rest/v1/leads.json", {"input": []})
    assert bad["success"] is False
    assert "result" not in bad
    assert all(isinstance(e["code"], str) and e["message"] for e in bad["errors"])


def test_unknown_path_is_610_and_wrong_method_is_605(api: Api) -> None:
    assert codes(api.get("/rest/v1/nothing.json")) == ["610"]
    assert codes(dict(api.call("PUT", "/rest/v1/leads.json", json={}).json())) == ["605"]


def test_json_writes_need_json_content_type_and_valid_json(api: Api) -> None:
    r = api.call("POST", "/rest/v1/leads.json", data="input=x", headers={"Content-Type": "text/plain"})
    assert codes(r.json()) == ["612"]
    r = api.call("POST", "/rest/v1/leads.json", data="{not json", headers={"Content-Type": "application/json"})
    assert codes(r.json()) == ["609"]


# -- limits -------------------------------------------------------------------------------------------


def test_sliding_window_refuses_with_606_and_counts_refused_calls(clock: FakeClock) -> None:
    with MarketoEmulator(clock=clock, rate_limit=5, window_seconds=1.0) as emu:
        api = Api(emu)
        for _ in range(3):
            assert api.get("/rest/v1/leads/describe2.json")["success"]
        clock.advance(0.5)
        for _ in range(2):
            assert api.get("/rest/v1/leads/describe2.json")["success"]
        clock.advance(0.4)  # t = 0.9: five calls in the last second
        refused = api.get("/rest/v1/leads/describe2.json")
        assert refused["errors"] == [{"code": "606", "message": "Max rate limit '5' exceeded with in '1' secs"}]
        clock.advance(0.1)  # t = 1.0: the three calls of t = 0 left the window; the refused one did not
        assert api.get("/rest/v1/leads/describe2.json")["success"]
        assert api.get("/rest/v1/leads/describe2.json")["success"]
        assert codes(api.get("/rest/v1/leads/describe2.json")) == ["606"]


def test_sliding_window_without_counting_refused_calls(clock: FakeClock) -> None:
    with MarketoEmulator(clock=clock, rate_limit=2, window_seconds=1.0, count_rejected_calls=False) as emu:
        api = Api(emu)
        api.get("/rest/v1/leads/describe2.json")
        api.get("/rest/v1/leads/describe2.json")
        for _ in range(3):
            assert codes(api.get("/rest/v1/leads/describe2.json")) == ["606"]
        clock.advance(1.0)
        assert api.get("/rest/v1/leads/describe2.json")["success"]
        assert api.get("/rest/v1/leads/describe2.json")["success"]


def test_window_slides_on_the_real_clock() -> None:
    with MarketoEmulator(rate_limit=3, window_seconds=0.5, count_rejected_calls=False) as emu:
        api = Api(emu)
        results = [api.get("/rest/v1/leads/describe2.json")["success"] for _ in range(4)]
        assert results == [True, True, True, False]
        threading.Event().wait(0.6)
        assert api.get("/rest/v1/leads/describe2.json")["success"]


def test_more_than_max_concurrency_in_flight_is_615() -> None:
    with MarketoEmulator(max_concurrency=3, latency=1.0) as emu:
        api = Api(emu)
        barrier = threading.Barrier(9)

        def one(_: int) -> dict[str, Any]:
            barrier.wait()
            return api.get("/rest/v1/leads/describe2.json")

        with ThreadPoolExecutor(9) as pool:
            answers = list(pool.map(one, range(9)))
        ok = [a for a in answers if a["success"]]
        refused = [a for a in answers if codes(a) == ["615"]]
        assert len(ok) == 3
        assert len(refused) == 6
        assert refused[0]["errors"][0]["message"] == "Concurrent access limit reached"
        assert emu.max_in_flight > 3
        assert max(c.in_flight_at_start for c in emu.rest_calls()) >= 3


def test_daily_quota_607_resets_at_midnight_us_central() -> None:
    clock = FakeClock(datetime(2025, 3, 4, 5, 30, tzinfo=timezone.utc))  # 23:30 on Mar 3 in Chicago (CST)
    with MarketoEmulator(clock=clock, daily_quota=3) as emu:
        api = Api(emu)
        emu.inject_fault("611")  # quota-exempt answers are refunded
        assert codes(api.get("/rest/v1/leads/describe2.json")) == ["611"]
        for _ in range(3):
            assert api.get("/rest/v1/leads/describe2.json")["success"]
        assert api.get("/rest/v1/leads/describe2.json")["errors"] == [{"code": "607", "message": "Daily quota reached"}]
        clock.advance(29 * 60)  # 23:59 Central: still the same quota day
        assert codes(api.get("/rest/v1/leads/describe2.json")) == ["607"]
        clock.advance(60)  # 00:00 Central
        assert api.get("/rest/v1/leads/describe2.json")["success"]
        usage = api.get("/rest/v1/stats/usage.json")["result"][0]
        assert (usage["date"], usage["total"]) == ("2025-03-04", 2)


def test_usage_counts_every_api_user_of_the_instance(clock: FakeClock) -> None:
    with MarketoEmulator(clock=clock, daily_quota=10, api_user="fbmkto@acme.com") as emu:
        api = Api(emu)
        assert (
            requests.get(f"{emu.url}/identity/oauth/token", params=CLIENT, timeout=5).json()["scope"]
            == "fbmkto@acme.com"
        )
        api.get("/rest/v1/leads/describe2.json")
        spent = requests.post(f"{emu.url}/_emulator/usage", json={"count": 6, "userId": "crm@acme.com"}, timeout=5)
        assert spent.json()["counted"] == 6
        usage = api.get("/rest/v1/stats/usage.json")["result"]
        assert usage == [
            {
                "date": "2025-03-03",
                "total": 8,
                "users": [{"userId": "crm@acme.com", "count": 6}, {"userId": "fbmkto@acme.com", "count": 2}],
            }
        ]
        assert emu.spend_other_usage(5, "crm@acme.com") == 2  # the quota holds 2 more; the rest was refused
        assert codes(api.get("/rest/v1/leads/describe2.json")) == ["607"]  # the shared quota is spent


def test_more_than_300_records_or_filter_values_is_1003(api: Api) -> None:
    many = [{"email": f"u{i}@x.com"} for i in range(301)]
    assert codes(api.post("/rest/v1/leads.json", {"input": many})) == ["1003"]
    assert codes(
        api.post("/rest/v1/companies.json", {"input": [{"externalCompanyId": str(i)} for i in range(301)]})
    ) == ["1003"]
    assert codes(api.post("/rest/v1/activities/external.json", {"input": [{}] * 301})) == ["1003"]
    values = ",".join(f"u{i}@x.com" for i in range(301))
    r = api.call("POST", "/rest/v1/leads.json", data={"_method": "GET", "filterType": "email", "filterValues": values})
    assert codes(r.json()) == ["1003"]
    assert api.emu.leads() == []


def test_body_over_1_mb_is_a_bare_413(api: Api) -> None:
    body = {"input": [{"email": "a@x.com", "firstName": "x" * (1024 * 1024)}]}
    r = api.call("POST", "/rest/v1/leads.json", json=body)
    assert r.status_code == 413
    with pytest.raises(requests.JSONDecodeError):
        r.json()
    assert api.emu.leads() == []


def test_url_over_8_kb_is_a_bare_414_and_post_with_method_get_works(api: Api) -> None:
    emails = [f"someone.with.a.long.name{i}@example.com" for i in range(250)]
    api.post("/rest/v1/leads.json", {"input": [{"email": e} for e in emails[:3]]})
    params = {"filterType": "email", "filterValues": ",".join(emails), "fields": "email"}
    r = api.call("GET", "/rest/v1/leads.json", params=params)
    assert r.status_code == 414
    with pytest.raises(requests.JSONDecodeError):
        r.json()
    r = api.call("POST", "/rest/v1/leads.json", data={"_method": "GET", **params})
    assert r.status_code == 200
    assert sorted(x["email"] for x in r.json()["result"]) == sorted(emails[:3])
    assert api.emu.calls[-1].effective_method == "GET"


# -- leads --------------------------------------------------------------------------------------------


def test_lead_writes_answer_one_result_per_record_in_order(api: Api) -> None:
    api.post("/rest/v1/leads.json", {"input": [{"email": "old@x.com"}]})
    body = api.post(
        "/rest/v1/leads.json",
        {
            "action": "createOrUpdate",
            "lookupField": "email",
            "input": [
                {"email": "new@x.com", "firstName": "N"},
                {"email": "OLD@x.com", "lastName": "O"},
                {"email": "c@x.com", "fbPaymentStatus": "paid"},
                {"firstName": "no email"},
                {"email": "not-an-email"},
                {"email": "d@x.com", "unsubscribed": "maybe"},
            ],
        },
    )
    assert body["success"] is True
    result = body["result"]
    assert [r["status"] for r in result] == ["created", "updated", "skipped", "skipped", "skipped", "skipped"]
    assert result[1]["id"] == api.emu.leads()[0]["id"]
    assert result[2]["reasons"] == [{"code": "1006", "message": "Field 'fbPaymentStatus' not found"}]
    assert [r["reasons"][0]["code"] for r in result[3:]] == ["1003", "1001", "1001"]
    assert api.emu.leads()[0]["lastName"] == "O"


def test_create_only_and_update_only(api: Api) -> None:
    api.post("/rest/v1/leads.json", {"input": [{"email": "a@x.com"}]})
    created = api.post("/rest/v1/leads.json", {"action": "createOnly", "input": [{"email": "A@x.com"}]})
    assert created["result"][0]["reasons"][0] == {"code": "1005", "message": "Lead already exists"}
    updated = api.post("/rest/v1/leads.json", {"action": "updateOnly", "input": [{"email": "b@x.com"}]})
    assert updated["result"][0]["reasons"][0] == {"code": "1004", "message": "Lead not found"}
    assert len(api.emu.leads()) == 1


def test_update_only_never_creates_and_both_actions_report_updated(api: Api) -> None:
    (existing,) = lead_ids(api, "a@x.com")
    for action in ("updateOnly", "createOrUpdate"):
        body = {"action": action, "input": [{"email": "a@x.com", "firstName": action}]}
        assert api.post("/rest/v1/leads.json", body)["result"] == [{"id": existing, "status": "updated"}]
    only = api.post(
        "/rest/v1/leads.json", {"action": "updateOnly", "input": [{"email": f"n{i}@x.com"} for i in range(3)]}
    )
    assert [r["status"] for r in only["result"]] == ["skipped"] * 3
    assert [lead["id"] for lead in api.emu.leads()] == [existing]


def test_lead_partitions_new_leads_go_where_named_and_updates_stay(clock: FakeClock) -> None:
    with MarketoEmulator(clock=clock, partitions=("EMEA",)) as emu:
        api = Api(emu)
        assert [(p["id"], p["name"]) for p in api.get("/rest/v1/leads/partitions.json")["result"]] == [
            (1, "Default"),
            (2, "EMEA"),
        ]
        (default,) = lead_ids(api, "d@x.com")  # no partitionName: the Default partition
        emea = api.post("/rest/v1/leads.json", {"partitionName": "EMEA", "input": [{"email": "e@x.com"}]})
        moved = api.post("/rest/v1/leads.json", {"partitionName": "EMEA", "input": [{"email": "d@x.com"}]})
        assert moved["result"] == [{"id": default, "status": "updated"}]
        read = api.get(
            "/rest/v1/leads.json", filterType="email", filterValues="d@x.com,e@x.com", fields="email,leadPartitionId"
        )
        assert [(r["email"], r["leadPartitionId"]) for r in read["result"]] == [("d@x.com", 1), ("e@x.com", 2)]
        assert emea["result"][0]["status"] == "created"
        unknown = api.post(
            "/rest/v1/leads.json", {"partitionName": "emea", "input": [{"email": "d@x.com"}, {"email": "z@x.com"}]}
        )
        assert unknown["success"] is True  # record level: every record refused, even the update
        assert [r["reasons"] for r in unknown["result"]] == [
            [{"code": "1008", "message": "Access denied to partition 'emea'"}]
        ] * 2
        direct = api.post("/rest/v1/leads.json", {"input": [{"email": "d@x.com", "leadPartitionId": 2}]})
        assert direct["result"][0]["reasons"][0]["code"] == "1011"  # read-only: partitions move by their own call
        assert [(lead["email"], lead["leadPartitionId"]) for lead in emu.leads()] == [("d@x.com", 1), ("e@x.com", 2)]


def test_a_role_spanning_partitions_must_name_one_to_create(clock: FakeClock) -> None:
    with MarketoEmulator(clock=clock, partitions=("EMEA",), require_partition_name=True) as emu:
        api = Api(emu)
        named = api.post("/rest/v1/leads.json", {"partitionName": "Default", "input": [{"email": "a@x.com"}]})
        unnamed = api.post("/rest/v1/leads.json", {"input": [{"email": "a@x.com"}, {"email": "b@x.com"}]})
        assert named["result"][0]["status"] == "created"
        assert unnamed["result"][0] == {"id": named["result"][0]["id"], "status": "updated"}
        assert unnamed["result"][1]["reasons"] == [{"code": "1009", "message": "Partition name must be specified"}]
        assert len(emu.leads()) == 1
    with MarketoEmulator(clock=clock, require_partition_name=True) as emu:  # one partition: nothing to name
        assert (
            Api(emu).post("/rest/v1/leads.json", {"input": [{"email": "a@x.com"}]})["result"][0]["status"] == "created"
        )


def test_merged_lead_is_gone_and_its_activities_and_lists_move_to_the_winner(clock: FakeClock) -> None:
    with MarketoEmulator(clock=clock, lists={1001: "Paid"}) as emu:
        api = Api(emu)
        type_id = emu.create_activity_type_direct("fbInvoiceSent")
        winner, loser = lead_ids(api, "w@x.com", "l@x.com")
        activity = {"leadId": loser, "activityDate": "2025-03-01T00:00:00Z", "activityTypeId": type_id}
        api.post("/rest/v1/activities/external.json", {"input": [{**activity, "primaryAttributeValue": "INV-1"}]})
        api.post("/rest/v1/lists/1001/leads.json", {"input": [{"id": loser}]})
        merge = requests.post(f"{emu.url}/_emulator/leads/merge", json={"winner": winner, "loser": loser}, timeout=5)
        assert merge.status_code == 200
        assert [lead["id"] for lead in emu.leads()] == [winner]
        assert [a["leadId"] for a in emu.activities()] == [winner]
        assert emu.list_members(1001) == [winner]
        again = api.post(
            "/rest/v1/activities/external.json", {"input": [{**activity, "primaryAttributeValue": "INV-2"}]}
        )
        assert again["result"][0]["errors"][0]["code"] == "1004"
        assert (
            api.post("/rest/v1/lists/1001/leads.json", {"input": [{"id": loser}]})["result"][0]["reasons"][0]["code"]
            == "1004"
        )
        assert api.get("/rest/v1/leads.json", filterType="id", filterValues=str(loser))["result"] == []
        gone = requests.post(f"{emu.url}/_emulator/leads/merge", json={"winner": winner, "loser": loser}, timeout=5)
        assert gone.status_code == 404


def test_leads_read_by_filter_with_fields_and_paging(api: Api, clock: FakeClock) -> None:
    lead_ids(api, "a@x.com", "b@x.com", "c@x.com")
    first = api.get(
        "/rest/v1/leads.json",
        filterType="email",
        filterValues="A@X.COM,b@x.com,c@x.com",
        fields="email,company",
        batchSize=2,
    )
    assert [x["email"] for x in first["result"]] == ["a@x.com", "b@x.com"]
    assert all("company" not in x for x in first["result"])  # null values are left out
    second = api.get(
        "/rest/v1/leads.json",
        filterType="email",
        filterValues="a@x.com,b@x.com,c@x.com",
        fields="email",
        batchSize=2,
        nextPageToken=first["nextPageToken"],
    )
    assert [x["email"] for x in second["result"]] == ["c@x.com"]
    assert "nextPageToken" not in second
    defaults = api.get("/rest/v1/leads.json", filterType="id", filterValues="1")["result"][0]
    assert set(defaults) == {"id", "email", "createdAt", "updatedAt"}
    assert defaults["updatedAt"] == "2025-03-03T12:00:00Z"
    assert codes(api.get("/rest/v1/leads.json", filterType="email", filterValues="a@x.com", fields="nope")) == ["1006"]
    assert codes(api.get("/rest/v1/leads.json", filterType="title", filterValues="x")) == ["1011"]


def test_updated_at_moves_only_when_a_value_changes(api: Api, clock: FakeClock) -> None:
    api.post("/rest/v1/leads.json", {"input": [{"email": "a@x.com", "firstName": "A"}]})
    clock.advance(60)
    api.post("/rest/v1/leads.json", {"input": [{"email": "a@x.com", "firstName": "A"}]})
    assert api.emu.leads()[0]["updatedAt"] == "2025-03-03T12:00:00Z"
    api.post("/rest/v1/leads.json", {"input": [{"email": "a@x.com", "firstName": "B"}]})
    assert api.emu.leads()[0]["updatedAt"] == "2025-03-03T12:01:00Z"
    assert api.emu.leads()[0]["createdAt"] == "2025-03-03T12:00:00Z"


def test_lead_fields_are_created_by_api_and_described(api: Api) -> None:
    spec = {"displayName": "FB Payment Status", "name": "fbPaymentStatus", "dataType": "string"}
    body = api.post("/rest/v1/leads/schema/fields.json", {"input": [spec, {**spec, "name": "fbBad", "dataType": "x"}]})
    assert [r["status"] for r in body["result"]] == ["created", "skipped"]
    assert body["result"][1]["reasons"][0]["code"] == "1003"
    again = api.post("/rest/v1/leads/schema/fields.json", {"input": [spec]})
    assert again["result"][0]["status"] == "skipped"
    assert again["result"][0]["reasons"][0]["code"] == "1017"
    too_many = [{**spec, "name": f"f{i}"} for i in range(101)]
    assert codes(api.post("/rest/v1/leads/schema/fields.json", {"input": too_many})) == ["1003"]
    fields = api.get("/rest/v1/leads/describe2.json")["result"][0]["fields"]
    names = {f["name"] for f in fields}
    assert {"id", "email", "firstName", "lastName", "company", "externalCompanyId", "updatedAt"} <= names
    assert "fbPaymentStatus" in names
    written = api.post("/rest/v1/leads.json", {"input": [{"email": "a@x.com", "fbPaymentStatus": "paid"}]})
    assert written["result"][0]["status"] == "created"


# -- companies ----------------------------------------------------------------------------------------


def test_companies_dedupe_on_external_company_id_with_default_sync_fields(api: Api) -> None:
    rec = {"externalCompanyId": "fbmkto:acme.com", "company": "Acme", "fbPaymentTerms": "Net 30", "fbInvoiceCount": 3}
    first = api.post(
        "/rest/v1/companies.json", {"action": "createOrUpdate", "dedupeBy": "dedupeFields", "input": [rec]}
    )
    second = api.post(
        "/rest/v1/companies.json", {"input": [{**rec, "fbInvoiceCount": 4}, {"externalCompanyId": "b", "x": 1}]}
    )
    assert first["result"] == [{"seq": 0, "id": 1, "status": "created"}]
    assert second["result"][0] == {"seq": 0, "id": 1, "status": "updated"}
    assert second["result"][1]["reasons"] == [{"code": "1006", "message": "Field 'x' not found"}]
    read = api.get(
        "/rest/v1/companies.json",
        filterType="externalCompanyId",
        filterValues="fbmkto:acme.com",
        fields="company,fbInvoiceCount",
    )
    assert read["result"] == [{"seq": 0, "id": 1, "company": "Acme", "fbInvoiceCount": 4}]
    described = {f["name"] for f in api.get("/rest/v1/companies/describe.json")["result"][0]["fields"]}
    assert {"fbPaymentTerms", "fbOutstandingBalance", "fbPaymentStatus", "fbLastPaymentDate"} <= described


def test_company_fields_cannot_be_created_by_api(clock: FakeClock) -> None:
    with MarketoEmulator(clock=clock, company_fields={}) as emu:
        api = Api(emu)
        rec = {"externalCompanyId": "k", "fbPaymentTerms": "Net 30"}
        skipped = api.post("/rest/v1/companies.json", {"input": [rec]})
        assert skipped["result"][0]["reasons"][0]["code"] == "1006"
        assert codes(api.post("/rest/v1/companies/schema/fields.json", {"input": []})) == ["610"]
        emu.add_company_field("fbPaymentTerms", "string")
        assert api.post("/rest/v1/companies.json", {"input": [rec]})["result"][0]["status"] == "created"


@pytest.mark.parametrize("mode", [True, "response", "record"])
def test_crm_synced_instance_refuses_company_writes_with_1018(clock: FakeClock, mode: bool | str) -> None:
    with MarketoEmulator(clock=clock, crm_synced=mode) as emu:
        api = Api(emu)
        body = api.post("/rest/v1/companies.json", {"input": [{"externalCompanyId": "a"}, {"externalCompanyId": "b"}]})
        if mode == "record":
            assert body["success"] is True
            assert [r["reasons"] for r in body["result"]] == [[{"code": "1018", "message": "CRM Enabled"}]] * 2
        else:
            assert body["errors"] == [{"code": "1018", "message": "CRM Enabled"}]
        assert emu.companies() == []
        assert api.get("/rest/v1/companies/describe.json")["success"] is True


# -- custom activities --------------------------------------------------------------------------------

TYPE = {
    "apiName": "fbInvoiceSent",
    "name": "Invoice Sent",
    "triggerName": "Invoice is sent",
    "filterName": "Was sent invoice",
    "primaryAttribute": {"apiName": "invoiceNumber", "name": "Invoice Number", "dataType": "string"},
    "attributes": [{"apiName": "amount", "name": "Amount", "dataType": "currency"}],
}


def activity(lead: int, type_id: int, **over: Any) -> dict[str, Any]:
    return {
        "leadId": lead,
        "activityDate": "2025-03-01T10:00:00-05:00",
        "activityTypeId": type_id,
        "primaryAttributeValue": "INV-1",
        "attributes": [{"apiName": "amount", "value": "12.50"}],
        **over,
    }


def test_type_create_ignores_attributes_and_unknown_keys(api: Api) -> None:
    # Marketo's create takes apiName, name, triggerName, filterName, primaryAttribute and description only.
    created = api.post("/rest/v1/activities/external/type.json", {**TYPE, "isPublic": True})["result"][0]
    assert created["attributes"] == []
    assert created["primaryAttribute"]["apiName"] == "invoiceNumber"
    assert "isPublic" not in created
    api.post("/rest/v1/activities/external/type/fbInvoiceSent/approve.json")
    (lead,) = lead_ids(api, "a@x.com")
    refused = api.post("/rest/v1/activities/external.json", {"input": [activity(lead, created["id"])]})["result"][0]
    assert (refused["status"], refused["errors"][0]["code"]) == ("skipped", "1006")
    assert refused["errors"][0]["message"] == "Field 'amount' not found"


def test_attributes_go_to_a_draft_that_needs_approval(api: Api) -> None:
    created = api.post("/rest/v1/activities/external/type.json", TYPE)["result"][0]
    api.post("/rest/v1/activities/external/type/fbInvoiceSent/approve.json")
    path = "/rest/v1/activities/external/type/fbInvoiceSent/attributes/create.json"
    drafted = api.post(path, {"attributes": TYPE["attributes"]})["result"][0]
    assert (drafted["status"], [a["apiName"] for a in drafted["attributes"]]) == ("draft", ["amount"])
    (lead,) = lead_ids(api, "a@x.com")
    still = api.post("/rest/v1/activities/external.json", {"input": [activity(lead, created["id"])]})["result"][0]
    assert still["errors"][0]["code"] == "1006"  # the approved version has no attribute yet
    assert codes(api.post(path, {"attributes": TYPE["attributes"]})) == ["1017"]
    api.post("/rest/v1/activities/external/type/fbInvoiceSent/approve.json")
    added = api.post("/rest/v1/activities/external.json", {"input": [activity(lead, created["id"])]})["result"][0]
    assert added["status"] == "added"


def test_draft_activity_type_refuses_writes_until_approved(api: Api) -> None:
    created = api.post("/rest/v1/activities/external/type.json", TYPE)["result"][0]
    assert created["status"] == "draft"
    assert created["id"] >= 100000
    api.post(
        "/rest/v1/activities/external/type/fbInvoiceSent/attributes/create.json", {"attributes": TYPE["attributes"]}
    )
    (lead,) = lead_ids(api, "a@x.com")
    refused = api.post("/rest/v1/activities/external.json", {"input": [activity(lead, created["id"])]})
    assert refused["success"] is True
    skipped = refused["result"][0]
    assert skipped["status"] == "skipped"
    assert skipped["errors"][0]["code"] == "1013"
    assert "fbInvoiceSent" in skipped["errors"][0]["message"]
    approved = api.post("/rest/v1/activities/external/type/fbInvoiceSent/approve.json")["result"][0]
    assert approved["status"] == "approved"
    added = api.post("/rest/v1/activities/external.json", {"input": [activity(lead, created["id"])]})["result"][0]
    assert added["status"] == "added"
    assert isinstance(added["id"], int)
    assert api.emu.activities()[0]["attributes"] == [{"name": "Amount", "apiName": "amount", "value": 12.5}]


def test_activity_type_limits_and_duplicates(api: Api) -> None:
    api.post("/rest/v1/activities/external/type.json", TYPE)
    assert codes(api.post("/rest/v1/activities/external/type.json", TYPE)) == ["1017"]
    renamed = {**TYPE, "apiName": "other"}  # same name, trigger and filter names
    assert codes(api.post("/rest/v1/activities/external/type.json", renamed)) == ["1017"]
    attrs = [{"apiName": f"a{i}", "name": f"A{i}", "dataType": "string"} for i in range(20)]
    ok = api.post("/rest/v1/activities/external/type/fbInvoiceSent/attributes/create.json", {"attributes": attrs})
    assert len(ok["result"][0]["attributes"]) == 20
    one_more = {"attributes": [{"apiName": "z", "name": "Z", "dataType": "string"}]}
    assert codes(api.post("/rest/v1/activities/external/type/fbInvoiceSent/attributes/create.json", one_more)) == [
        "1028"
    ]
    for i in range(9):
        body = {**TYPE, "apiName": f"t{i}", "name": f"T{i}", "triggerName": f"tr{i}", "filterName": f"fi{i}"}
        assert api.post("/rest/v1/activities/external/type.json", body)["success"]
    eleventh = {**TYPE, "apiName": "t10", "name": "T10", "triggerName": "tr10", "filterName": "fi10"}
    assert codes(api.post("/rest/v1/activities/external/type.json", eleventh)) == ["1027"]
    assert len(api.get("/rest/v1/activities/external/types.json")["result"]) == 10


def test_activities_are_never_deduplicated_and_skips_carry_errors(api: Api) -> None:
    type_id = api.emu.create_activity_type_direct(
        "fbPaymentReceived",
        "Payment Received",
        primary_attribute=("paymentId", "Payment Id", "string"),
        attributes=[("amount", "Amount", "currency")],
    )
    (lead,) = lead_ids(api, "a@x.com")
    same = activity(lead, type_id)
    body = api.post(
        "/rest/v1/activities/external.json",
        {
            "input": [
                same,
                same,
                activity(999, type_id),
                activity(lead, type_id, activityDate="2025-03-01T10:00:00"),
                activity(lead, type_id, attributes=[{"apiName": "nope", "value": 1}]),
                activity(lead, 1),
            ]
        },
    )
    statuses = [r["status"] for r in body["result"]]
    assert statuses == ["added", "added", "skipped", "skipped", "skipped", "skipped"]
    assert body["result"][0]["id"] != body["result"][1]["id"]
    assert [r["errors"][0]["code"] for r in body["result"][2:]] == ["1004", "1001", "1006", "1003"]
    assert all("reasons" not in r for r in body["result"])
    assert len(api.emu.activities(lead)) == 2
    assert api.emu.activities(lead)[0]["activityDate"] == "2025-03-01T15:00:00Z"


def test_activity_types_list_standard_and_approved_custom_types(api: Api) -> None:
    api.post("/rest/v1/activities/external/type.json", TYPE)
    before = {t["id"]: t["name"] for t in api.get("/rest/v1/activities/types.json")["result"]}
    assert before[1] == "Visit Webpage"
    assert before[12] == "New Lead"
    assert before[13] == "Change Data Value"
    assert all(i < 100000 for i in before)  # drafts are not listed
    api.post("/rest/v1/activities/external/type/fbInvoiceSent/approve.json")
    after = {t["name"] for t in api.get("/rest/v1/activities/types.json")["result"]}
    assert "Invoice Sent" in after


def test_reading_activities_with_paging_tokens(api: Api, clock: FakeClock) -> None:
    type_id = api.emu.create_activity_type_direct("fbInvoiceSent", attributes=[("amount", "Amount", "currency")])
    a, b = lead_ids(api, "a@x.com", "b@x.com")
    rows = [activity(a if i % 2 else b, type_id, activityDate=f"2025-03-01T0{i}:00:00Z") for i in range(5)]
    api.post("/rest/v1/activities/external.json", {"input": rows})
    start = api.get("/rest/v1/activities/pagingtoken.json", sinceDatetime="2025-03-01T01:00:00Z")
    assert "result" not in start
    assert start["nextPageToken"]
    page1 = api.get(
        "/rest/v1/activities.json", nextPageToken=start["nextPageToken"], activityTypeIds=str(type_id), batchSize=3
    )
    assert [x["activityDate"] for x in page1["result"]] == [f"2025-03-01T0{i}:00:00Z" for i in (1, 2, 3)]
    assert page1["moreResult"] is True
    assert set(page1["result"][0]) >= {
        "id",
        "marketoGUID",
        "leadId",
        "activityDate",
        "activityTypeId",
        "primaryAttributeValue",
        "attributes",
    }
    page2 = api.get(
        "/rest/v1/activities.json", nextPageToken=page1["nextPageToken"], activityTypeIds=str(type_id), batchSize=3
    )
    assert len(page2["result"]) == 1
    assert page2["moreResult"] is False
    assert page2["nextPageToken"]
    empty = api.get("/rest/v1/activities.json", nextPageToken=page2["nextPageToken"], activityTypeIds=str(type_id))
    assert "result" not in empty
    assert empty["moreResult"] is False
    assert empty["nextPageToken"]
    only_a = api.get(
        "/rest/v1/activities.json",
        nextPageToken=start["nextPageToken"],
        activityTypeIds=f"{type_id},12",
        leadIds=str(a),
    )
    assert {x["leadId"] for x in only_a["result"]} == {a}
    assert {x["activityTypeId"] for x in only_a["result"]} == {type_id, 12}  # New Lead is logged too
    tok = start["nextPageToken"]
    assert codes(
        api.get(
            "/rest/v1/activities.json",
            nextPageToken=tok,
            activityTypeIds=type_id,
            leadIds=",".join(map(str, range(1, 32))),
        )
    ) == ["1003"]
    assert codes(
        api.get("/rest/v1/activities.json", nextPageToken=tok, activityTypeIds=",".join(map(str, range(1, 12))))
    ) == ["1003"]


# -- static lists and campaigns -----------------------------------------------------------------------


def test_static_list_membership(clock: FakeClock) -> None:
    with MarketoEmulator(clock=clock, lists={1001: "FB Paid", 1002: "FB Overdue"}) as emu:
        api = Api(emu)
        a, b = lead_ids(api, "a@x.com", "b@x.com")
        added = api.post("/rest/v1/lists/1001/leads.json", {"input": [{"id": a}, {"id": b}, {"id": 999}]})
        assert [r["status"] for r in added["result"]] == ["added", "added", "skipped"]
        assert added["result"][2]["reasons"] == [{"code": "1004", "message": "Lead not found"}]
        assert emu.list_members(1001) == [a, b]
        r = api.call("DELETE", "/rest/v1/lists/1001/leads.json", json={"input": [{"id": a}, {"id": a}]})
        assert [x["status"] for x in r.json()["result"]] == ["removed", "skipped"]
        assert r.json()["result"][1]["reasons"][0]["code"] == "1015"
        assert emu.list_members(1001) == [b]
        members = api.get("/rest/v1/lists/1001/leads.json", fields="email")
        assert members["result"] == [{"id": b, "email": "b@x.com"}]
        assert codes(api.post("/rest/v1/lists/4242/leads.json", {"input": [{"id": a}]})) == ["1013"]
        assert codes(api.post("/rest/v1/lists/1002/leads.json", {"input": [{"id": a}] * 301})) == ["1003"]
        assert emu.create_list("Extra") == 1003


def test_lists_and_campaigns_are_described_by_id(api: Api) -> None:
    base = f"{api.emu.url}/_emulator"
    assert codes(api.get("/rest/v1/lists/1001.json")) == ["1013"]
    assert codes(api.get("/rest/v1/campaigns/55.json")) == ["1013"]
    assert requests.post(f"{base}/lists", json={"name": "FB Paid", "id": 1001}, timeout=5).status_code == 201
    assert requests.post(f"{base}/campaigns", json={"name": "Dunning", "id": 55}, timeout=5).status_code == 201
    assert requests.post(f"{base}/campaigns", json={"name": "Again", "id": 55}, timeout=5).status_code == 409
    assert requests.post(f"{base}/campaigns", json={"name": ""}, timeout=5).status_code == 400
    assert api.get("/rest/v1/lists/1001.json")["result"][0]["name"] == "FB Paid"
    campaign = api.get("/rest/v1/campaigns/55.json")["result"][0]
    assert (campaign["id"], campaign["name"], campaign["active"]) == (55, "Dunning", True)
    assert requests.get(f"{base}/campaigns", timeout=5).json() == {"campaigns": [{"id": 55, "name": "Dunning"}]}


def test_smart_campaign_requests_are_recorded(api: Api) -> None:
    a, b = lead_ids(api, "a@x.com", "b@x.com")
    trigger = {"input": {"leads": [{"id": a}]}}
    assert codes(api.post("/rest/v1/campaigns/77/trigger.json", trigger)) == ["1013"]  # none exists yet
    assert api.emu.create_campaign("Collections nurture", 77) == 77
    body = api.post("/rest/v1/campaigns/77/trigger.json", {"input": {"leads": [{"id": a}, {"id": b}]}})
    assert body["result"] == [{"id": 77}]
    assert api.emu.campaign_requests()[0]["campaignId"] == 77
    assert api.emu.campaign_requests()[0]["leadIds"] == [a, b]
    too_many = {"input": {"leads": [{"id": a}] * 101}}
    assert codes(api.post("/rest/v1/campaigns/77/trigger.json", too_many)) == ["1003"]
    assert len(api.emu.campaign_requests()) == 1


# -- bulk export --------------------------------------------------------------------------------------


def export_body(start: str = "2025-03-01T00:00:00Z", end: str = "2025-03-31T00:00:00Z") -> dict[str, Any]:
    return {
        "fields": ["id", "email", "firstName"],
        "format": "CSV",
        "filter": {"updatedAt": {"startAt": start, "endAt": end}},
    }


def test_bulk_export_state_machine_and_ranged_download(clock: FakeClock) -> None:
    with MarketoEmulator(clock=clock, bulk_step_seconds=10) as emu:
        api = Api(emu)
        api.post("/rest/v1/leads.json", {"input": [{"email": "a@x.com", "firstName": "Ann"}, {"email": "b@x.com"}]})
        job = api.post("/bulk/v1/leads/export/create.json", export_body())["result"][0]
        export_id = job["exportId"]
        assert job["status"] == "Created"
        status = f"/bulk/v1/leads/export/{export_id}/status.json"
        assert api.get(status)["result"][0]["status"] == "Created"
        assert api.post(f"/bulk/v1/leads/export/{export_id}/enqueue.json")["result"][0]["status"] == "Queued"
        assert codes(api.post(f"/bulk/v1/leads/export/{export_id}/enqueue.json")) == ["1029"]
        early = api.call("GET", f"/bulk/v1/leads/export/{export_id}/file.json")
        assert early.status_code == 404
        clock.advance(10)
        assert api.get(status)["result"][0]["status"] == "Processing"
        clock.advance(9)
        assert api.get(status)["result"][0]["status"] == "Processing"
        clock.advance(1)
        done = api.get(status)["result"][0]
        assert done["status"] == "Completed"
        assert done["numberOfRecords"] == 2
        whole = api.call("GET", f"/bulk/v1/leads/export/{export_id}/file.json")
        assert whole.status_code == 200
        assert whole.text == "id,email,firstName\n1,a@x.com,Ann\n2,b@x.com,\n"
        assert done["fileSize"] == len(whole.content)
        part = api.call("GET", f"/bulk/v1/leads/export/{export_id}/file.json", headers={"Range": "bytes=19-33"})
        assert part.status_code == 206
        assert part.content == whole.content[19:34]
        assert part.headers["Content-Range"] == f"bytes 19-33/{len(whole.content)}"
        assert emu.status_poll_intervals(export_id) == [10.0, 9.0, 1.0]  # polls at t = 0, 10, 19, 20
        assert emu.too_fast_status_polls(export_id) == 3  # all faster than the 60 s pace


def test_bulk_export_cancel_and_failure(clock: FakeClock) -> None:
    with MarketoEmulator(clock=clock, bulk_step_seconds=1) as emu:
        api = Api(emu)
        first = api.post("/bulk/v1/leads/export/create.json", export_body())["result"][0]["exportId"]
        api.post(f"/bulk/v1/leads/export/{first}/enqueue.json")
        assert api.post(f"/bulk/v1/leads/export/{first}/cancel.json")["result"][0]["status"] == "Cancelled"
        emu.inject_fault("export_failed")
        second = api.post("/bulk/v1/leads/export/create.json", export_body())["result"][0]["exportId"]
        api.post(f"/bulk/v1/leads/export/{second}/enqueue.json")
        clock.advance(2)
        failed = api.get(f"/bulk/v1/leads/export/{second}/status.json")["result"][0]
        assert failed["status"] == "Failed"
        assert failed["errorMsg"]


def test_bulk_export_limits(clock: FakeClock) -> None:
    with MarketoEmulator(clock=clock, bulk_step_seconds=5) as emu:
        api = Api(emu)
        too_long = export_body("2025-03-01T00:00:00Z", "2025-04-02T00:00:00Z")
        assert codes(api.post("/bulk/v1/leads/export/create.json", too_long)) == ["1003"]
        bad_field = {**export_body(), "fields": ["email", "nope"]}
        assert codes(api.post("/bulk/v1/leads/export/create.json", bad_field)) == ["1006"]
        ids = [api.post("/bulk/v1/leads/export/create.json", export_body())["result"][0]["exportId"] for _ in range(11)]
        for export_id in ids[:10]:
            assert api.post(f"/bulk/v1/leads/export/{export_id}/enqueue.json")["success"]
        assert codes(api.post(f"/bulk/v1/leads/export/{ids[10]}/enqueue.json")) == ["1029"]
        clock.advance(5)
        states = [api.get(f"/bulk/v1/leads/export/{i}/status.json")["result"][0]["status"] for i in ids[:10]]
        assert states.count("Processing") == 2
        assert states.count("Queued") == 8
        # the 10 include the jobs processing (Marketo: "inclusive of currently exporting jobs")
        full = api.post(f"/bulk/v1/leads/export/{ids[10]}/enqueue.json")
        assert full["errors"] == [{"code": "1029", "message": "Too many jobs in queue"}]
        clock.advance(5)
        states = [api.get(f"/bulk/v1/leads/export/{i}/status.json")["result"][0]["status"] for i in ids[:4]]
        assert states == ["Completed", "Completed", "Processing", "Processing"]
        assert api.post(f"/bulk/v1/leads/export/{ids[10]}/enqueue.json")["success"]  # two slots freed
    with MarketoEmulator(clock=clock, updated_at_filter_supported=False) as emu:
        api = Api(emu)
        assert codes(api.post("/bulk/v1/leads/export/create.json", export_body())) == ["1035"]


def test_export_daily_quota_refuses_create_and_enqueue_and_repeat_enqueue_says_already_queued(clock: FakeClock) -> None:
    with MarketoEmulator(clock=clock, bulk_step_seconds=1, bulk_daily_bytes=10) as emu:
        api = Api(emu)
        lead_ids(api, "a@x.com")
        first = api.post("/bulk/v1/leads/export/create.json", export_body())["result"][0]["exportId"]
        second = api.post("/bulk/v1/leads/export/create.json", export_body())["result"][0]["exportId"]
        api.post(f"/bulk/v1/leads/export/{first}/enqueue.json")
        again = api.post(f"/bulk/v1/leads/export/{first}/enqueue.json")
        assert again["errors"] == [{"code": "1029", "message": "Job already queued"}]
        clock.advance(2)
        assert api.get(f"/bulk/v1/leads/export/{first}/status.json")["result"][0]["status"] == "Completed"
        quota = [{"code": "1029", "message": "Export daily quota exceeded"}]
        assert api.post(f"/bulk/v1/leads/export/{second}/enqueue.json")["errors"] == quota
        assert api.post("/bulk/v1/leads/export/create.json", export_body())["errors"] == quota
        clock.advance(24 * 3600)  # the next US Central day
        assert Api(emu).post(f"/bulk/v1/leads/export/{second}/enqueue.json")["success"]


# -- faults -------------------------------------------------------------------------------------------


def test_injected_faults(api: Api) -> None:
    emu = api.emu
    emu.inject_fault("606", count=2, path_prefix="/rest/v1/leads.json")
    assert api.get("/rest/v1/leads/describe2.json")["success"]  # other path: not affected
    for _ in range(2):
        r = api.call("GET", "/rest/v1/leads.json", params={"filterType": "id", "filterValues": "1"})
        assert r.status_code == 200
        assert codes(r.json()) == ["606"]
    assert api.get("/rest/v1/leads.json", filterType="id", filterValues="1")["success"]
    emu.inject_fault("502")
    r = api.call("GET", "/rest/v1/leads/describe2.json")
    assert r.status_code == 502
    with pytest.raises(requests.JSONDecodeError):
        r.json()
    emu.inject_fault("500", path_prefix="/identity")
    assert requests.get(f"{emu.url}/identity/oauth/token", params=CLIENT, timeout=5).status_code == 500
    with pytest.raises(ValueError, match="unknown fault kind"):
        emu.inject_fault("999")


@pytest.mark.parametrize(
    ("kind", "message", "expected"),
    [
        ("614", None, "Invalid Subscription"),
        ("719", None, "Lock wait timeout exception"),
        ("1029", "Export daily quota exceeded", "Export daily quota exceeded"),
    ],
)
def test_injected_marketo_codes_carry_their_message_or_the_given_one(
    api: Api, kind: str, message: str | None, expected: str
) -> None:
    api.emu.inject_fault(kind, message=message)
    assert api.get("/rest/v1/leads/describe2.json")["errors"] == [{"code": kind, "message": expected}]
    with pytest.raises(ValueError, match="message"):
        api.emu.inject_fault("502", message="nope")


def test_timeout_fault_stalls_but_the_write_lands() -> None:
    with MarketoEmulator(timeout_fault_seconds=1.0) as emu:
        api = Api(emu)
        emu.inject_fault("timeout")
        with pytest.raises(requests.ReadTimeout):
            requests.post(
                f"{emu.url}/rest/v1/leads.json",
                json={"input": [{"email": "a@x.com"}]},
                headers=api.headers,
                timeout=0.3,
            )
        deadline = datetime.now(timezone.utc) + timedelta(seconds=5)
        while not emu.leads() and datetime.now(timezone.utc) < deadline:
            threading.Event().wait(0.05)
        assert [x["email"] for x in emu.leads()] == ["a@x.com"]


def test_slow_fault_delays_then_serves() -> None:
    with MarketoEmulator(slow_fault_seconds=0.3) as emu:
        api = Api(emu)
        emu.inject_fault("slow")
        started = datetime.now(timezone.utc)
        assert api.get("/rest/v1/leads/describe2.json")["success"]
        assert datetime.now(timezone.utc) - started >= timedelta(seconds=0.3)


@pytest.mark.parametrize(
    "body",
    [[], "x", 1, {"input": "x"}, {"input": [1, None, [], {}]}, {"input": {"leads": [1]}}, {"attributes": [1]}],
    ids=["list", "string", "number", "input-string", "input-junk", "leads-junk", "attributes-junk"],
)
def test_malformed_writes_answer_an_envelope_never_http_500(clock: FakeClock, body: Any) -> None:
    paths = [
        "/rest/v1/leads.json",
        "/rest/v1/leads/schema/fields.json",
        "/rest/v1/companies.json",
        "/rest/v1/activities/external.json",
        "/rest/v1/activities/external/type.json",
        "/rest/v1/activities/external/type/t1/attributes/create.json",
        "/rest/v1/lists/1001/leads.json",
        "/rest/v1/campaigns/1/trigger.json",
        "/bulk/v1/leads/export/create.json",
    ]
    with MarketoEmulator(clock=clock, rate_limit=1000, lists={1001: "L"}, campaigns={1: "C"}) as emu:
        emu.create_activity_type_direct("t1")
        api = Api(emu)
        for path in paths:
            r = api.call("POST", path, json=body)
            assert r.status_code == 200, (path, r.text)
            answer = r.json()
            assert answer["success"] is False or all(x["status"] == "skipped" for x in answer["result"]), (path, answer)


# -- control API, reset, connection -------------------------------------------------------------------


def test_control_api_rejects_bad_input_with_4xx_json(mkto_emu: MarketoEmulator) -> None:
    base = f"{mkto_emu.url}/_emulator"
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("POST", "/faults", {"json": {"kind": "nope"}}, 400),
        ("POST", "/faults", {"json": {"kind": "606", "count": 0}}, 400),
        ("POST", "/faults", {"json": {"kind": "606", "extra": 1}}, 400),
        ("POST", "/faults", {"data": "{broken", "headers": {"Content-Type": "application/json"}}, 400),
        ("POST", "/faults", {"json": [1, 2]}, 400),
        ("GET", "/lists/abc", {}, 400),
        ("GET", "/lists/999", {}, 404),
        ("GET", "/activities?leadId=x", {}, 400),
        ("POST", "/lists", {"json": {"name": ""}}, 400),
        ("POST", "/company-fields", {"json": {"name": "fbPaymentTerms", "dataType": "string"}}, 409),
        ("POST", "/company-fields", {"json": {"name": "z", "dataType": "nope"}}, 400),
        ("GET", "/nowhere", {}, 404),
        ("PUT", "/reset", {}, 405),
    ]
    for method, path, kw, status in cases:
        r = requests.request(method, base + path, timeout=5, **kw)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        assert "error" in r.json()


def test_control_api_faults_calls_and_state_dumps(mkto_emu: MarketoEmulator) -> None:
    api = Api(mkto_emu)
    base = f"{mkto_emu.url}/_emulator"
    assert requests.post(f"{base}/faults", json={"kind": "608"}, timeout=5).status_code == 201
    assert codes(api.get("/rest/v1/leads/describe2.json")) == ["608"]
    (lead,) = lead_ids(api, "a@x.com")
    assert requests.post(f"{base}/lists", json={"name": "FB Paid", "id": 1001}, timeout=5).status_code == 201
    api.post("/rest/v1/lists/1001/leads.json", {"input": [{"id": lead}]})
    assert requests.get(f"{base}/leads", timeout=5).json()["leads"][0]["email"] == "a@x.com"
    assert requests.get(f"{base}/lists/1001", timeout=5).json()["members"] == [lead]
    calls = requests.get(f"{base}/calls", params={"rest_only": "1"}, timeout=5).json()["calls"]
    assert [c["codes"] for c in calls] == [["608"], [], []]
    ident = [c for c in mkto_emu.calls if c.path == "/identity/oauth/token"]
    assert ident[0].query["client_secret"] == "***"
    assert requests.post(f"{base}/tokens/expire", timeout=5).status_code == 200
    assert codes(api.get("/rest/v1/leads/describe2.json")) == ["602"]
    assert requests.post(f"{base}/reset", timeout=5).json() == {"reset": True}
    assert mkto_emu.leads() == []
    assert mkto_emu.calls == []


def test_reset_restores_constructor_state(clock: FakeClock) -> None:
    with MarketoEmulator(clock=clock, lists={1001: "FB Paid"}) as emu:
        api = Api(emu)
        (lead,) = lead_ids(api, "a@x.com")
        api.post("/rest/v1/lists/1001/leads.json", {"input": [{"id": lead}]})
        emu.inject_fault("611")
        emu.reset()
        assert emu.leads() == []
        assert emu.list_members(1001) == []
        assert emu.calls == []
        assert emu.faults.pending() == []
        assert codes(api.get("/rest/v1/leads/describe2.json")) == ["601"]  # tokens are forgotten too
        fresh = Api(emu)
        assert fresh.get("/rest/v1/leads/describe2.json")["success"]


def test_conn_json_describes_the_emulator(mkto_emu: MarketoEmulator) -> None:
    conn = json.loads(mkto_emu.conn_json(max_concurrency=5))
    assert conn == {
        "conn_type": "marketo",
        "host": mkto_emu.url,
        "login": "mkto-client-id",
        "password": "mkto-client-secret",
        "extra": {"window_seconds": 1.0, "max_concurrency": 5},
    }
    assert mkto_emu.url.startswith("http://127.0.0.1:")
