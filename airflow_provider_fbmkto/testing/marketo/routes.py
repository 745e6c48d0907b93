"""URL map (moto's ``urls.py``): path pattern and method -> handler name.

REST handlers are methods of :class:`~.handlers.RestHandlers`; control handlers (``/_emulator/...``) are
methods of :class:`~.control.ControlHandlers`. A path that matches with another method answers 605 (REST)
or 405 (control); a path that matches nothing answers 610 (REST) or 404 (control).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: str
    #: The endpoint reads a JSON body (POST/DELETE): a wrong content type answers 612, bad JSON 609.
    json_body: bool = False


def _r(method: str, pattern: str, handler: str, json_body: bool = False) -> Route:
    return Route(method, re.compile(f"^{pattern}$"), handler, json_body)


_ID = r"(?P<id>\d+)"
_API = r"(?P<api_name>[A-Za-z0-9_]+)"
_EXPORT = r"(?P<export_id>[A-Za-z0-9-]+)"

REST_ROUTES: tuple[Route, ...] = (
    _r("GET", r"/rest/v1/leads\.json", "get_leads"),
    _r("POST", r"/rest/v1/leads\.json", "sync_leads", json_body=True),
    _r("GET", r"/rest/v1/leads/describe\.json", "describe_leads"),
    _r("GET", r"/rest/v1/leads/describe2\.json", "describe2_leads"),
    _r("GET", r"/rest/v1/leads/partitions\.json", "lead_partitions"),
    _r("POST", r"/rest/v1/leads/schema/fields\.json", "create_lead_fields", json_body=True),
    _r("GET", rf"/rest/v1/lead/{_ID}\.json", "get_lead"),
    _r("GET", r"/rest/v1/companies\.json", "get_companies"),
    _r("POST", r"/rest/v1/companies\.json", "sync_companies", json_body=True),
    _r("GET", r"/rest/v1/companies/describe\.json", "describe_companies"),
    _r("GET", r"/rest/v1/activities/types\.json", "activity_types"),
    _r("GET", r"/rest/v1/activities/external/types\.json", "external_types"),
    _r("POST", r"/rest/v1/activities/external/type\.json", "create_external_type", json_body=True),
    _r("GET", rf"/rest/v1/activities/external/type/{_API}/describe\.json", "describe_external_type"),
    _r("POST", rf"/rest/v1/activities/external/type/{_API}/attributes/create\.json", "add_attributes", json_body=True),
    _r("POST", rf"/rest/v1/activities/external/type/{_API}/approve\.json", "approve_external_type"),
    _r("POST", r"/rest/v1/activities/external\.json", "add_activities", json_body=True),
    _r("GET", r"/rest/v1/activities/pagingtoken\.json", "paging_token"),
    _r("GET", r"/rest/v1/activities\.json", "get_activities"),
    _r("GET", r"/rest/v1/activities/leadchanges\.json", "lead_changes"),
    _r("GET", rf"/rest/v1/lists/{_ID}\.json", "get_list"),
    _r("GET", rf"/rest/v1/lists?/{_ID}/leads\.json", "list_members"),
    _r("POST", rf"/rest/v1/lists/{_ID}/leads\.json", "add_to_list", json_body=True),
    _r("DELETE", rf"/rest/v1/lists/{_ID}/leads\.json", "remove_from_list", json_body=True),
    _r("GET", rf"/rest/v1/campaigns/{_ID}\.json", "get_campaign"),
    _r("POST", rf"/rest/v1/campaigns/{_ID}/trigger\.json", "trigger_campaign", json_body=True),
    _r("GET", r"/rest/v1/stats/usage\.json", "usage"),
    _r("POST", r"/bulk/v1/leads/export/create\.json", "export_create", json_body=True),
    _r("POST", rf"/bulk/v1/leads/export/{_EXPORT}/enqueue\.json", "export_enqueue"),
    _r("GET", rf"/bulk/v1/leads/export/{_EXPORT}/status\.json", "export_status"),
    _r("POST", rf"/bulk/v1/leads/export/{_EXPORT}/cancel\.json", "export_cancel"),
    _r("GET", rf"/bulk/v1/leads/export/{_EXPORT}/file\.json", "export_file"),
    _r("GET", r"/bulk/v1/leads/export\.json", "export_list"),
)

IDENTITY_PATH = "/identity/oauth/token"
CONTROL_PREFIX = "/_emulator"

CONTROL_ROUTES: tuple[Route, ...] = (
    _r("POST", r"/_emulator/reset", "reset"),
    _r("GET", r"/_emulator/faults", "list_faults"),
    _r("POST", r"/_emulator/faults", "add_fault", json_body=True),
    _r("DELETE", r"/_emulator/faults", "clear_faults"),
    _r("GET", r"/_emulator/calls", "calls"),
    _r("POST", r"/_emulator/tokens/expire", "expire_tokens"),
    _r("GET", r"/_emulator/leads", "leads"),
    _r("GET", r"/_emulator/companies", "companies"),
    _r("GET", r"/_emulator/activities", "activities"),
    _r("GET", r"/_emulator/activity-types", "activity_types"),
    _r("GET", r"/_emulator/lists", "lists"),
    _r("POST", r"/_emulator/lists", "create_list", json_body=True),
    _r("GET", r"/_emulator/lists/(?P<id>[^/]+)", "list_members"),
    _r("POST", r"/_emulator/company-fields", "add_company_field", json_body=True),
    _r("GET", r"/_emulator/exports", "exports"),
    _r("GET", r"/_emulator/campaigns", "campaigns"),
    _r("POST", r"/_emulator/campaigns", "create_campaign", json_body=True),
    _r("GET", r"/_emulator/campaign-requests", "campaign_requests"),
    _r("GET", r"/_emulator/usage", "usage"),
    _r("POST", r"/_emulator/usage", "spend_other_usage", json_body=True),
    _r("POST", r"/_emulator/leads/merge", "merge_leads", json_body=True),
    _r("POST", r"/_emulator/leads", "create_lead", json_body=True),
    _r("POST", r"/_emulator/leads/(?P<id>\d+)", "edit_lead", json_body=True),
    _r("POST", r"/_emulator/companies/edit", "edit_company", json_body=True),
)


def resolve(routes: tuple[Route, ...], method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
    """``(route, path params, path_known)``; ``path_known`` is true when only the method did not match."""
    known = False
    for route in routes:
        found = route.pattern.match(path)
        if found:
            known = True
            if route.method == method:
                return route, found.groupdict(), True
    return None, {}, known
