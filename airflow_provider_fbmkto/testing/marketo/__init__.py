"""A strict Marketo REST emulator: a real HTTP server with Marketo's envelopes, codes, limits and paging.

Usage::

    from airflow_provider_fbmkto.testing.marketo import MarketoEmulator

    with MarketoEmulator(window_seconds=1.0) as mkto:
        os.environ["AIRFLOW_CONN_MARKETO_DEFAULT"] = mkto.conn_json()
        ...                                    # run the code under test
        assert mkto.max_in_flight <= 10
        assert not [c for c in mkto.rest_calls() if c.codes]

Layout (moto's split): ``routes`` (path -> handler), ``handlers`` (parse, render the envelope), ``models``
with ``leads``/``records``/``activities``/``bulk``/``limits``/``fields`` (state and rules), ``errors``
(one class per code), ``faults`` (fault kinds, on the shared ``testing/faults.py`` queue), ``app`` (the ASGI
pipeline and call log), ``control`` (``/_emulator/``), ``emulator`` (:class:`MarketoEmulator`).

Rules enforced (each has a test in ``tests/emulators/test_marketo_emulator.py``):

=============================  ===========================================================================
Area                           Rule
=============================  ===========================================================================
Identity                       ``GET|POST /identity/oauth/token?grant_type=client_credentials&client_id&
                               client_secret`` -> ``{access_token, token_type: bearer, expires_in, scope}``.
                               Asking again before expiry returns the same token with its remaining whole
                               seconds (can be 0). Bad credentials: HTTP 401 ``{"error": "unauthorized",
                               "error_description": "Bad client credentials"}``. Identity calls are not
                               rate-limited, do not count in the quota and never count as in flight.
Token on REST calls            Only ``Authorization: Bearer``. An ``access_token`` query/form parameter is
                               refused with 601 "Access token invalid" (even beside a good header).
                               Unknown/missing token 601, expired 602 -- both inside HTTP 200.
Envelope                       HTTP 200 ``{requestId "<hex>#<hex>", success, result, warnings}`` (+
                               ``nextPageToken``/``moreResult`` where paged); errors ``[{code, message}]``
                               with string codes. Unknown path 610, wrong method 605, bad JSON 609, non-JSON
                               content type on a JSON write 612.
Rate window                    ``rate_limit`` calls per ``window_seconds`` sliding window -> 606 "Max rate
                               limit '100' exceeded with in '20' secs".
Concurrency                    more than ``max_concurrency`` calls in flight -> 615 "Concurrent access limit
                               reached". ``latency`` keeps each admitted call in flight that long.
Daily quota                    ``daily_quota`` calls per US-Central day -> 607 "Daily quota reached".
                               The quota is the instance's: calls of other integrations
                               (:meth:`MarketoEmulator.spend_other_usage`, ``POST /_emulator/usage``) count
                               in it (at most up to it: past it Marketo refuses them).
Usage                          ``GET /rest/v1/stats/usage.json`` -> ``[{date (US-Central day, YYYY-MM-DD),
                               total, users: [{userId, count}]}]``: every API user with calls today, this
                               client's as ``api_user`` (also the identity answer's ``scope``), this call
                               included.
Counting                       Every authenticated REST call enters the window and the quota, including
                               calls refused with 606 or 615 (``count_rejected_calls=False`` turns that
                               off). Calls answered 601/602 enter the window, not the quota (Marketo exempts
                               them from the quota only). Every call is counted when it arrives, before
                               its latency: Marketo's own moment. Answers 604/605/608/611
                               are refunded from the quota (they stay in the window). Order of checks:
                               token, 615, 606, 607, injected fault, latency, the endpoint.
Sizes                          URL over 8 KB: bare HTTP 414; body over 1 MB: bare HTTP 413 (HTML bodies).
                               ``POST`` with form field ``_method=GET``: served as the ``GET`` of the same
                               path with the form fields as query parameters.
Batches                        More than 300 records in a write, 300 filterValues, 30 leadIds or 10
                               activityTypeIds: response-level 1003. 100 for lead-field creation and
                               campaign leads. Missing ``input``: 701.
Per-record results             ``success: true``, one result per input in order: ``{id, status:
                               created|updated|skipped, reasons: [{code, message}]}`` (companies add
                               ``seq``; custom activities use ``added`` and ``errors``).
Leads                          ``POST /rest/v1/leads.json`` createOrUpdate/createOnly/updateOnly, lookupField
                               ``email`` (case-insensitive) or ``id``. Unknown field -> skipped 1006; no
                               lookup value -> 1003; createOnly on existing -> 1005; updateOnly on missing
                               -> 1004 (updateOnly never creates; it and createOrUpdate answer ``updated``
                               for an existing lead); bad typed value -> 1001; ``createdAt``/``updatedAt``/
                               ``leadPartitionId`` (read-only) -> 1011.
                               Reads: filterType ``id|email|externalCompanyId`` (else 1011), ``fields``
                               (unknown -> 1006), null values left out, ``nextPageToken`` only when more.
                               ``describe.json``, ``describe2.json``; ``POST /leads/schema/fields.json``
                               creates custom fields (existing name -> skipped 1017, bad dataType 1003).
                               Creating a lead logs "New Lead" (12), each changed value "Change Data
                               Value" (13); ``updatedAt`` moves only when a value changes.
Lead partitions                ``Default`` (id 1) plus ``partitions=(...)``; ``GET /leads/partitions.json``
                               lists ``{id, name, description}``. ``partitionName`` (exact name) puts new
                               leads there, none puts them in ``Default``; an updated lead never moves.
                               ``leadPartitionId`` is readable with ``fields=``. A name not among the
                               partitions -> every record of the call skipped 1008 "Access denied to
                               partition '<name>'" (record level, updates too: the docs are silent, the
                               strict reading). ``require_partition_name`` with more than one partition:
                               a lead created without ``partitionName`` -> skipped 1009 "Partition name must
                               be specified" (updates go through).
Merged leads                   ``merge_leads(winner, loser)`` / ``POST /_emulator/leads/merge`` (a user's
                               merge): the loser is deleted (reads by id find nothing; activity writes and
                               list changes -> 1004); its activities and list memberships move to the
                               winner, which keeps its own values and partition (``updatedAt`` moves). No
                               "Merge Leads" activity is logged.
Companies                      ``POST /rest/v1/companies.json`` dedupeBy ``dedupeFields``
                               (externalCompanyId) or ``idField``; unknown field -> skipped 1006. Company
                               fields cannot be created by API; custom ones come from ``company_fields``
                               (default: the provider's fb* fields). ``crm_synced``: ``"response"`` (or True)
                               -> 1018 "CRM Enabled" for the call, ``"record"`` -> every record skipped 1018.
Custom activity types          ``POST /activities/external/type.json`` creates a draft with its primary
                               attribute only: an ``attributes`` key (like any unknown key) is ignored;
                               ``.../type/{apiName}/attributes/create.json`` adds secondary attributes to
                               the draft. Duplicate apiName, name, triggerName, filterName or attribute
                               apiName -> 1017 "Object already exists"; more than 10 types -> 1027; more
                               than 20 attributes -> 1028; ``.../approve.json`` publishes the draft (no
                               draft: 709). Writing to a type never approved -> record skipped 1013.
Custom activities              ``POST /activities/external.json``: ``added`` with ``id``/``marketoGUID``, or
                               ``skipped`` with ``errors``: unknown lead 1004, missing field 1002, date
                               without offset 1001, unknown attribute 1006, unknown type 1013, built-in type
                               1003. Never de-duplicated.
Reading activities             ``pagingtoken.json?sinceDatetime`` then ``activities.json?nextPageToken&
                               activityTypeIds[&leadIds]``; pages of ``batchSize`` (<= 300) in
                               (activityDate, id) order; ``nextPageToken`` always present; ``moreResult``
                               false at the end; ``result`` left out of an empty page.
Lead changes                   ``activities/leadchanges.json?nextPageToken&fields[&leadIds&listId&batchSize]``:
                               "New Lead" (12, ``fields: []``) and the "Change Data Value" (13) activities
                               of the named fields, each ``fields: [{id, name, newValue, oldValue}]``, paged
                               as above. ``fields`` and ``nextPageToken`` required (701); a name that is no
                               lead field 1006; a bad token 1003. Changes by the REST API have source "Web
                               service API"; a person's (``POST /_emulator/leads`` creates,
                               ``/_emulator/leads/{id}`` edits, ``edit_lead()``) "Marketo". A person's company
                               edit (``POST /_emulator/companies/edit``, ``edit_company()``) logs nothing.
Static lists                   ``POST``/``DELETE /rest/v1/lists/{id}/leads.json``: added/removed, unknown lead
                               skipped 1004, remove of a non-member skipped 1015; unknown list 1013.
                               ``GET`` (``/lists/`` or legacy ``/list/``) pages members; ``GET
                               /lists/{id}.json`` describes one list (unknown: 1013).
Smart campaigns                Only the campaigns given (``campaigns={...}``) or created through the control
                               API exist. ``GET /rest/v1/campaigns/{id}.json`` describes one (unknown: 1013);
                               ``POST .../trigger.json`` up to 100 leads; the request is recorded
                               (``campaign_requests()``); unknown leads are ignored; unknown campaign 1013.
Bulk lead export               create (fields known, one filter, ``updatedAt``/``createdAt`` range <= 31
                               days, else 1003; 1035 when ``updated_at_filter_supported=False``),
                               enqueue; 1029 with Marketo's three messages: "Too many jobs in queue" (10
                               queued or processing), "Export daily quota exceeded" (``bulk_daily_bytes``,
                               500 MB, of files completed this US-Central day: create and enqueue refused),
                               "Job already queued" (enqueue of a job past Created), status
                               (Created -> Queued -> Processing -> Completed, each step
                               ``bulk_step_seconds`` of clock time, 2 processing at once), cancel,
                               file (CSV/TSV/SSV with a header row; ``Range`` -> 206; before Completed ->
                               HTTP 404 with an envelope). Status polls are timed, never refused.
Faults                         :meth:`MarketoEmulator.inject_fault`: Marketo codes (614, 719, 1029 among
                               them) in a 200 envelope with the code's message or a given ``message``, bare
                               HTTP 500/502/503/413/414, ``timeout``/``slow`` stalls, ``export_failed``, ``garbled``
                               (served, then the answer cut short).
Control API                    ``/_emulator/`` reset, faults, calls, tokens/expire, leads, leads/merge,
                               companies, activities, activity-types, lists, lists/{id}, company-fields,
                               exports, campaigns, campaign-requests, usage. JSON only; bad input 4xx.
=============================  ===========================================================================
"""

from __future__ import annotations

from airflow_provider_fbmkto.testing.marketo.app import CallRecord
from airflow_provider_fbmkto.testing.marketo.emulator import MarketoEmulator
from airflow_provider_fbmkto.testing.marketo.errors import MarketoError
from airflow_provider_fbmkto.testing.marketo.models import MarketoModel

__all__ = ["CallRecord", "MarketoEmulator", "MarketoError", "MarketoModel"]
