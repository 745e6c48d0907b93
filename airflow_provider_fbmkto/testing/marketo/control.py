"""The emulator's own HTTP control API under ``/_emulator/`` (reset, faults, call log, state dumps).

Every answer is JSON; bad input answers 4xx with ``{"error": ...}``, never 500. Control calls are not
subject to Marketo's auth or limits and are not written to the call log.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from airflow_provider_fbmkto.testing.marketo import routes
from airflow_provider_fbmkto.testing.marketo.errors import AlreadyExists, MarketoError

if TYPE_CHECKING:
    from airflow_provider_fbmkto.testing.marketo.emulator import MarketoEmulator


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _int(raw: object, name: str) -> int:
    if isinstance(raw, bool):
        raise BadRequest(f"{name} must be an integer, not {raw!r}")
    try:
        return int(str(raw))
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be an integer, not {raw!r}") from None


def _flag(raw: str | None) -> bool:
    return (raw or "").lower() in ("1", "true", "yes")


class ControlHandlers:
    """Dispatch and handlers of :data:`~.routes.CONTROL_ROUTES`."""

    def __init__(self, emulator: MarketoEmulator) -> None:
        self.emu = emulator

    async def __call__(self, request: Request, path: str) -> JSONResponse:
        route, params, known = routes.resolve(routes.CONTROL_ROUTES, request.method, path)
        if route is None:
            if known:
                return JSONResponse({"error": f"method {request.method} not allowed on {path}"}, 405)
            return JSONResponse({"error": f"no control endpoint {path}"}, 404)
        body: Any = None
        if route.json_body:
            raw = await request.body()
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                return JSONResponse({"error": "body is not valid JSON"}, 400)
            if not isinstance(body, dict):
                return JSONResponse({"error": "body must be a JSON object"}, 400)
        try:
            status, payload = getattr(self, route.handler)(request, params, body)
        except BadRequest as err:
            return JSONResponse({"error": err.message}, err.status)
        except MarketoError as err:
            status = 409 if err.code == AlreadyExists.code else 400
            return JSONResponse({"error": err.message, "code": err.code}, status)
        return JSONResponse(payload, status)

    # Each handler: (request, path params, JSON body or None) -> (HTTP status, JSON payload).

    def reset(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        self.emu.reset()
        return 200, {"reset": True}

    def list_faults(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        return 200, {"faults": self._pending_faults(), "exportFailuresPending": self.emu.model.exports.fail_next}

    def add_fault(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        unknown = set(body) - {"kind", "count", "path_prefix", "message"}
        if unknown:
            raise BadRequest(f"unknown keys {sorted(unknown)}; allowed: kind, count, path_prefix, message")
        try:
            self.emu.inject_fault(body.get("kind"), body.get("count", 1), body.get("path_prefix"), body.get("message"))
        except ValueError as err:
            raise BadRequest(str(err)) from None
        return 201, {"faults": self._pending_faults()}

    def _pending_faults(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self.emu.faults.pending()]

    def clear_faults(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        self.emu.faults.clear()
        with self.emu.model.lock:
            self.emu.model.exports.fail_next = 0
        return 200, {"faults": []}

    def calls(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        prefix = request.query_params.get("path_prefix", "")
        calls = self.emu.rest_calls() if _flag(request.query_params.get("rest_only")) else list(self.emu.calls)
        return 200, {
            "calls": [c.as_json() for c in calls if c.path.startswith(prefix)],
            "maxInFlight": self.emu.max_in_flight,
        }

    def expire_tokens(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        self.emu.model.tokens.expire_all()
        return 200, {"expired": True}

    def leads(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        return 200, {"leads": self.emu.leads()}

    def companies(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        return 200, {"companies": self.emu.companies()}

    def activities(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        raw = request.query_params.get("leadId")
        lead_id = _int(raw, "leadId") if raw not in (None, "") else None
        standard = _flag(request.query_params.get("includeStandard"))
        return 200, {"activities": self.emu.activities(lead_id, include_standard=standard)}

    def activity_types(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        return 200, {"activityTypes": self.emu.activity_types()}

    def lists(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        with self.emu.model.lock:
            lists = [{"id": s.id, "name": s.name, "members": sorted(s.members)} for s in self.emu.model.lists.values()]
        return 200, {"lists": lists}

    def create_list(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise BadRequest("name must be a non-empty string")
        list_id = _int(body["id"], "id") if body.get("id") is not None else None
        return 201, {"id": self.emu.create_list(name, list_id), "name": name}

    def list_members(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        list_id = _int(params["id"], "list id")
        with self.emu.model.lock:
            found = self.emu.model.lists.get(list_id)
            if found is None:
                raise BadRequest(f"no static list {list_id}", 404)
            return 200, {"id": found.id, "name": found.name, "members": sorted(found.members)}

    def add_company_field(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        name, data_type = body.get("name"), body.get("dataType")
        if not isinstance(name, str) or not isinstance(data_type, str):
            raise BadRequest("name and dataType must be strings")
        self.emu.model.add_company_field(name, data_type)
        return 201, {"name": name, "dataType": data_type}

    def exports(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        with self.emu.model.lock:
            self.emu.model.exports.advance()
            jobs = list(self.emu.model.exports.jobs.values())
        out = [{**j.as_json(), "statusPollIntervals": self.emu.status_poll_intervals(j.id)} for j in jobs]
        return 200, {"exports": out}

    def campaigns(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        with self.emu.model.lock:
            found = [{"id": i, "name": n} for i, n in sorted(self.emu.model.campaigns.items())]
        return 200, {"campaigns": found}

    def create_campaign(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise BadRequest("name must be a non-empty string")
        campaign_id = _int(body["id"], "id") if body.get("id") is not None else None
        return 201, {"id": self.emu.model.create_campaign(name, campaign_id), "name": name}

    def usage(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        return 200, self.emu.usage_today()

    def spend_other_usage(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        unknown = set(body) - {"count", "userId"}
        if unknown:
            raise BadRequest(f"unknown keys {sorted(unknown)}; allowed: count, userId")
        count = _int(body.get("count"), "count")
        user_id = body.get("userId", "other-integration")
        if not isinstance(user_id, str):
            raise BadRequest("userId must be a string")
        try:
            counted = self.emu.spend_other_usage(count, user_id)
        except ValueError as err:
            raise BadRequest(str(err)) from None
        return 200, {"counted": counted, **self.emu.usage_today()}

    def merge_leads(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        unknown = set(body) - {"winner", "loser"}
        if unknown or "winner" not in body or "loser" not in body:
            raise BadRequest('body must be {"winner": <lead id>, "loser": <lead id>}')
        winner, loser = _int(body["winner"], "winner"), _int(body["loser"], "loser")
        try:
            self.emu.merge_leads(winner, loser)
        except KeyError as err:
            raise BadRequest(str(err.args[0]), 404) from None
        except ValueError as err:
            raise BadRequest(str(err)) from None
        return 200, {"winner": winner, "merged": [loser]}

    def campaign_requests(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        return 200, {"campaignRequests": self.emu.campaign_requests()}

    def create_lead(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        """A person creates a lead in Marketo: ``{"values": {"email": ..., ...}}``."""
        return 201, {"lead": self.emu.edit_lead(None, _values(body, {"values"}))}

    def edit_lead(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        """A person edits a lead in Marketo: ``{"values": {"firstName": ...}}``."""
        try:
            lead = self.emu.edit_lead(_int(params["id"], "lead id"), _values(body, {"values"}))
        except KeyError as err:
            raise BadRequest(str(err.args[0]), 404) from None
        return 200, {"lead": lead}

    def edit_company(self, request: Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        """A person edits a company in Marketo: ``{"externalCompanyId": ..., "values": {"company": ...}}``."""
        values = _values(body, {"values", "externalCompanyId"})
        external_id = body.get("externalCompanyId")
        if not isinstance(external_id, str) or not external_id:
            raise BadRequest("externalCompanyId must be a non-empty string")
        try:
            company = self.emu.edit_company(external_id, values)
        except KeyError as err:
            raise BadRequest(str(err.args[0]), 404) from None
        return 200, {"company": company}


def _values(body: Any, allowed: set[str]) -> dict[str, Any]:
    unknown = set(body) - allowed
    values = body.get("values")
    if unknown or not isinstance(values, dict) or not values:
        raise BadRequest(f'body must be {{"values": {{<field>: <value>, ...}}}} (allowed keys: {sorted(allowed)})')
    return values
