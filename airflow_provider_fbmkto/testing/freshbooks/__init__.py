"""A strict FreshBooks API emulator: a real HTTP server with FreshBooks' envelopes, rules and failure modes.

Usage (like moto for AWS)::

    from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator

    with FreshBooksEmulator(seed="demo") as fb:
        os.environ["AIRFLOW_CONN_FRESHBOOKS_DEFAULT"] = fb.conn_json()
        code = fb.issue_code()          # what the user's "Allow" click on auth.freshbooks.com yields
        ...                             # exchange it at POST {fb.url}/auth/oauth/token, call the API
        fb.inject_fault("429", retry_after=2, path_prefix="/accounting/")
        assert [c.status for c in fb.calls][-1] == 200

Layout (moto's split): ``routes.py`` path → handler and the ASGI dispatcher (call log, faults);
``handlers.py`` parses requests and renders envelopes; ``models.py`` + ``fields.py`` hold records and rules;
``oauth.py`` codes and tokens; ``webhooks.py`` callbacks and signed deliveries; ``errors.py`` typed errors;
``faults.py`` fault kinds (on the shared ``testing/faults.py`` queue); ``seed.py`` deterministic data;
``control.py`` the ``/_emulator/`` API.

Enforced rules (each has its own test in ``tests/emulators/test_freshbooks_emulator.py``):

===== ========================================================================================================
 #    rule
===== ========================================================================================================
O1    ``POST /auth/oauth/token`` takes a JSON **or** form body; anything else → 400 ``invalid_request``
O2    wrong/missing ``client_id``/``client_secret`` → 401 ``{"error": "invalid_client"}``
O3    authorization codes are single-use: a second exchange → 400 ``invalid_grant``
O4    codes live 5 minutes of emulator clock; later → 400 ``invalid_grant``
O5    ``redirect_uri`` must equal the one the code was issued for → 400 ``invalid_grant``
O6    refresh tokens are single-use and rotate: each refresh returns a new pair; the spent token → 400
      ``invalid_grant``; the previous access token stays valid until it expires
O7    revoked refresh tokens → 400 ``invalid_grant``
O8    token response: ``access_token``, ``refresh_token``, ``token_type`` "Bearer", ``expires_in`` (43200),
      ``scope``, ``created_at`` (epoch seconds of the emulator clock)
O9    ``GET /oauth/authorize`` checks ``client_id``, ``redirect_uri`` (registered, else 400, no redirect),
      ``response_type=code`` and ``scope`` (else redirect with ``error=``); success → 302 ``?code=``
A1    every API call needs ``Authorization: Bearer``; missing, unknown or expired → 401 with an error body in
      the API family's shape (identity ``error``/``error_description``; accounting ``response.errors``;
      events ``errno``/``message``) and ``WWW-Authenticate``
A2    scopes: users/me needs ``user:profile:read``; clients/invoices/payments need
      ``user:{clients,invoices,payments}:read``; a webhook for event X needs X's resource read scope;
      missing → 403 whose message names the scopes granted and the scope needed
I1    ``GET /auth/api/v1/users/me`` → ``response.business_memberships[].business`` with ``id`` (business id)
      and ``account_id``
L1    list envelope ``{"response": {"result": {<plural>: [...], page, pages, per_page, total}}}``; single
      object ``{"response": {"result": {<singular>: {...}}}}``
L2    ``account_id`` not the emulator's → 404 accounting error envelope
L3    paging: ``page`` 1-based, ``per_page`` default 15 (``default_per_page``), silently capped at 100; a page
      past the end → empty list (not an error); ``page``/``per_page`` below 1 count as 1; non-integers → 400
L4    ``search[updated_min]``/``search[updated_max]`` are ``YYYY-MM-DD`` compared with the calendar day of
      ``updated`` in ``search_zone`` (US/Eastern by default, DST-correct); ``updated_max`` is exclusive
L5    invoices: ``search[date_min]``/``search[date_max]`` (``create_date``, both inclusive),
      ``search[customerid]``, ``search[v3_status]`` (incl. ``overdue``), ``search[invoiceids][]``;
      payments: ``search[invoiceid]``; clients: ``search[email]`` (case-insensitive), ``search[userids][]``
L6    unknown ``search[…]`` keys (and unknown query parameters) are ignored silently
L7    a non-date value for a date filter (or a non-integer id filter) → 400 ``response.errors`` with
      ``errno``/``field``/``message``
L8    deleted records (``vis_state`` 1) are hidden from lists; ``search[vis_state]=1`` returns only deleted
      ones (``0``/``2`` only active/archived, per FreshBooks' "Active and Deleted Objects" page); archived
      records are listed by default; get-by-id still returns a deleted record
L9    ``updated``/``created_at`` are naive US/Eastern ``YYYY-MM-DD HH:MM:SS`` (zoneinfo America/New_York);
      ``signup_date`` of clients is UTC; dates are ``YYYY-MM-DD``; money is ``{"amount": "123.45", "code"}``
L10   invoices carry ``id`` == ``invoiceid``, payments ``id`` == ``logid`` (no ``paymentid``), clients
      ``id`` == ``userid``
L11   payments drive invoices: ``paid``/``outstanding``/``status`` (8 partial, 4 paid, 5 auto-paid)/
      ``v3_status``/``payment_status``/``date_paid`` change together (and ``updated``, with
      ``payment_touches_invoice``); deleting a payment reverts them; overpayments are refused; ``v3_status`` is
      ``overdue`` when unpaid past ``due_date`` (by the emulator clock's Eastern day)
W1    callbacks: POST/GET ``/events/account/{account_id}/events/callbacks``, GET/PUT/DELETE ``…/{id}``;
      unknown event or bad uri → 422 ``{"errno", "message", "details"}``; unknown id → 404; DELETE → 204
W2    creating a callback POSTs a verification form (``name=callback.verify``, ``object_id``, ``verifier``, …)
      to the uri from a background thread, after the create call answered; PUT ``{"callback": {"verifier"}}``
      verifies (wrong verifier → 422); ``{"callback": {"resend": true}}`` sends a new verifier
W3    unverified callbacks get no events; verified ones get form-encoded ``name``, ``object_id``,
      ``account_id``, ``business_id``, ``identity_id``, ``user_id`` with ``X-FreshBooks-Hmac-SHA256`` =
      base64(HMAC-SHA256(verifier, json.dumps(fields))); a bare resource (``invoice``) gets all its events
W4    record changes emit ``<kind>.create|update|delete``; a payment also emits ``invoice.update`` (with
      ``payment_touches_invoice``);
      ``send_invoice`` emits ``invoice.sendByEmail`` (and a draft becomes sent)
F1    faults ``500``/``502``/``503``/``429`` (``Retry-After``), ``timeout`` (delay then 504), ``slow`` (delay then
      the real answer), ``401`` (the token expires on the spot); each for ``count`` matching requests
C1    control API ``/_emulator/…``: JSON in/out; bad input → 4xx ``{"error": …, "field": …}``, never 500
S1    seeds are deterministic (same seed, sizes, ``as_of`` → same records); ``"demo"`` is a fixed small
      business relative to the emulator clock
===== ========================================================================================================

Behaviours FreshBooks does not document are switches (constructor arguments, ``configure()``, or
``POST /_emulator/behaviour``) so the sync is tested both ways: ``payment_touches_invoice`` (default true),
``search_zone`` (default ``America/New_York``; ``UTC`` or the business's zone are the other candidates) and
``default_per_page`` (default 15). ``reset()`` restores the constructor's settings.

Emulator choices where FreshBooks documents nothing (tests pin them; change them here if reality differs):
accounting ``errno`` 1012 not found, 1001 unauthorized, 1003 missing scope, 2001 invalid value; lists are
ordered by ascending id; webhook deliveries are not retried; events other than client/invoice/payment ones
are refused with 422; ``reset()`` also forgets tokens and callbacks; control-API calls are not recorded in
``calls``.
"""

from __future__ import annotations

from .emulator import FreshBooksEmulator
from .errors import EmulatorError, FieldError
from .faults import FAULT_KINDS, Fault
from .models import FreshBooksModel, Search
from .oauth import DEFAULT_SCOPES
from .routes import CallRecord
from .seed import FREE_MAIL_DOMAINS, seed
from .webhooks import SIGNATURE_HEADER, sign

__all__ = [
    "DEFAULT_SCOPES",
    "FAULT_KINDS",
    "FREE_MAIL_DOMAINS",
    "SIGNATURE_HEADER",
    "CallRecord",
    "EmulatorError",
    "Fault",
    "FieldError",
    "FreshBooksEmulator",
    "FreshBooksModel",
    "Search",
    "seed",
    "sign",
]
