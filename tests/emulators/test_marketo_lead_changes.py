"""The emulator's Lead Changes feed (``/activities/leadchanges.json``), through real HTTP with plain ``requests``.

Every create ("New Lead", 12) and every field change ("Change Data Value", 13, old and new value) is logged,
by the REST API and by a person in Marketo (the control API); the feed pages as Marketo's does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from airflow_provider_fbmkto.testing.marketo import MarketoEmulator

CLIENT = {"grant_type": "client_credentials", "client_id": "mkto-client-id", "client_secret": "mkto-client-secret"}
FIELDS = "email,firstName,lastName"


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 3, 12, 0, tzinfo=timezone.utc)
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
def emu(clock: FakeClock) -> Iterator[MarketoEmulator]:
    with MarketoEmulator(clock=clock, window_seconds=1.0) as emulator:
        yield emulator


class Api:
    def __init__(self, emu: MarketoEmulator) -> None:
        self.url = emu.url
        tok = requests.get(f"{emu.url}/identity/oauth/token", params=CLIENT, timeout=5).json()["access_token"]
        self.headers = {"Authorization": f"Bearer {tok}"}

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        r = requests.get(f"{self.url}{path}", params=params, headers=self.headers, timeout=10)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def post(self, path: str, body: Any) -> dict[str, Any]:
        r = requests.post(f"{self.url}{path}", json=body, headers=self.headers, timeout=10)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def control(self, path: str, body: Any) -> requests.Response:
        return requests.post(f"{self.url}/_emulator{path}", json=body, timeout=10)


@pytest.fixture
def api(emu: MarketoEmulator) -> Api:
    return Api(emu)


def codes(body: dict[str, Any]) -> list[str]:
    return [e["code"] for e in body.get("errors", [])]


def start_token(api: Api, since: str = "2025-03-01T00:00:00Z") -> str:
    return str(api.get("/rest/v1/activities/pagingtoken.json", sinceDatetime=since)["nextPageToken"])


def feed(api: Api, token: str, fields: str = FIELDS, **params: Any) -> dict[str, Any]:
    return api.get("/rest/v1/activities/leadchanges.json", nextPageToken=token, fields=fields, **params)


def test_api_creates_and_changes_are_logged_with_old_and_new_values(api: Api, clock: FakeClock) -> None:
    tok = start_token(api)
    created = api.post("/rest/v1/leads.json", {"input": [{"email": "ann@x.com", "firstName": "Ann"}]})
    lead_id = created["result"][0]["id"]
    clock.advance(60)
    api.post("/rest/v1/leads.json", {"input": [{"email": "ann@x.com", "firstName": "Anne", "lastName": "Lee"}]})
    clock.advance(60)
    api.post("/rest/v1/leads.json", {"input": [{"email": "ann@x.com", "firstName": "Anne"}]})  # no change: no log
    body = feed(api, tok)
    assert body["success"] is True
    assert body["moreResult"] is False
    assert body["nextPageToken"]
    result = body["result"]
    assert [(a["activityTypeId"], a["leadId"]) for a in result] == [(12, lead_id), (13, lead_id), (13, lead_id)]
    assert set(result[0]) == {"id", "marketoGUID", "leadId", "activityDate", "activityTypeId", "fields", "attributes"}
    assert result[0]["fields"] == []
    changes = sorted((f["name"], f["oldValue"], f["newValue"]) for a in result[1:] for f in a["fields"])
    assert changes == [("firstName", "Ann", "Anne"), ("lastName", None, "Lee")]
    assert all(isinstance(f["id"], int) for a in result[1:] for f in a["fields"])
    assert {"name": "Source", "value": "Web service API"} in result[1]["attributes"]
    assert result[1]["activityDate"] == "2025-03-03T12:01:00Z"


def test_a_person_editing_in_marketo_is_logged_too(api: Api, emu: MarketoEmulator) -> None:
    tok = start_token(api)
    made = api.control("/leads", {"values": {"email": "bo@x.com", "firstName": "Bo"}})
    assert made.status_code == 201, made.text
    lead_id = made.json()["lead"]["id"]
    edited = api.control(f"/leads/{lead_id}", {"values": {"lastName": "Berg", "email": "bo@y.com"}})
    assert edited.status_code == 200, edited.text
    result = feed(api, tok)["result"]
    assert [a["activityTypeId"] for a in result] == [12, 13, 13]
    assert {"name": "Source Type", "value": "Marketo"} in result[0]["attributes"]
    assert sorted((f["name"], f["oldValue"], f["newValue"]) for a in result[1:] for f in a["fields"]) == [
        ("email", "bo@x.com", "bo@y.com"),
        ("lastName", None, "Berg"),
    ]
    assert {"name": "Source", "value": "Marketo"} in result[1]["attributes"]
    assert emu.leads()[0]["email"] == "bo@y.com"
    assert api.control("/leads/999", {"values": {"firstName": "X"}}).status_code == 404
    assert api.control(f"/leads/{lead_id}", {"values": {"noSuchField": "X"}}).status_code == 400
    assert api.control(f"/leads/{lead_id}", {"values": {"updatedAt": "2025-01-01"}}).status_code == 400


def test_only_the_requested_fields_changes_come_back(api: Api) -> None:
    tok = start_token(api)
    api.post("/rest/v1/leads.json", {"input": [{"email": "c@x.com"}]})
    api.post("/rest/v1/leads.json", {"input": [{"email": "c@x.com", "title": "CEO"}]})
    api.post("/rest/v1/leads.json", {"input": [{"email": "c@x.com", "firstName": "Cy", "title": "CTO"}]})
    result = feed(api, tok)["result"]
    assert [a["activityTypeId"] for a in result] == [12, 13]  # the title changes are not asked for
    assert [f["name"] for f in result[1]["fields"]] == ["firstName"]
    assert len(feed(api, tok, fields="title")["result"]) == 3


def test_the_feed_pages_like_marketo(api: Api, clock: FakeClock) -> None:
    tok = start_token(api)
    for i in range(7):
        clock.advance(1)
        api.post("/rest/v1/leads.json", {"input": [{"email": f"p{i}@x.com", "firstName": f"P{i}"}]})
    seen: list[int] = []
    pages = 0
    while True:
        body = feed(api, tok, batchSize=3)
        pages += 1
        seen += [a["id"] for a in body.get("result", [])]
        tok = body["nextPageToken"]
        if not body["moreResult"]:
            break
    assert pages == 3
    assert len(seen) == 7
    assert seen == sorted(seen)
    later = feed(api, tok)  # the last token is the feed's position: nothing new yet, still a token
    assert "result" not in later
    assert later["moreResult"] is False
    assert later["nextPageToken"]
    api.post("/rest/v1/leads.json", {"input": [{"email": "p0@x.com", "firstName": "Pea"}]})
    assert [a["activityTypeId"] for a in feed(api, later["nextPageToken"])["result"]] == [13]


def test_lead_ids_filter_and_limits(api: Api) -> None:
    tok = start_token(api)
    ids = [
        r["id"]
        for r in api.post("/rest/v1/leads.json", {"input": [{"email": "a@x.com"}, {"email": "b@x.com"}]})["result"]
    ]
    assert {a["leadId"] for a in feed(api, tok, leadIds=str(ids[1]))["result"]} == {ids[1]}
    assert codes(feed(api, tok, leadIds=",".join(map(str, range(1, 32))))) == ["1003"]
    assert codes(feed(api, tok, batchSize=301)) == ["1003"]
    assert len(feed(api, tok, batchSize=300)["result"]) == 2


def test_bad_requests_are_refused(api: Api) -> None:
    tok = start_token(api)
    assert codes(feed(api, tok, fields="email,notAField")) == ["1006"]
    assert codes(api.get("/rest/v1/activities/leadchanges.json", nextPageToken=tok)) == ["701"]
    assert codes(api.get("/rest/v1/activities/leadchanges.json", fields=FIELDS)) == ["701"]
    assert codes(feed(api, "NOT-A-TOKEN")) == ["1003"]
    lead_page = api.get("/rest/v1/leads.json", filterType="email", filterValues="a@x.com")
    assert lead_page["success"] is True


def test_a_person_editing_a_company(api: Api, emu: MarketoEmulator) -> None:
    api.post("/rest/v1/companies.json", {"input": [{"externalCompanyId": "fbmkto:k1", "company": "Acme"}]})
    r = api.control("/companies/edit", {"externalCompanyId": "fbmkto:k1", "values": {"company": "Acme Ltd"}})
    assert r.status_code == 200, r.text
    got = api.get("/rest/v1/companies.json", filterType="externalCompanyId", filterValues="fbmkto:k1", fields="company")
    assert got["result"][0]["company"] == "Acme Ltd"
    assert api.control("/companies/edit", {"externalCompanyId": "nope", "values": {"company": "X"}}).status_code == 404
