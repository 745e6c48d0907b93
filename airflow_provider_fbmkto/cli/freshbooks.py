"""``fbmkto authorize`` and ``fbmkto webhooks register|verify|list|delete``: FreshBooks set-up commands.

``authorize`` runs the OAuth authorization-code flow once and stores the first (encrypted) token pair in the
state DB; tasks refresh it from there. It never prints a token. ``webhooks`` manages FreshBooks callbacks
pointing at the receiver (``<api-server>/fbmkto/webhooks/freshbooks/<account>``) and completes their
verification with the verifier the receiver stored.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from airflow_provider_fbmkto.cli import accounts
from airflow_provider_fbmkto.exceptions import AuthError, ConfigError

if TYPE_CHECKING:
    from airflow_provider_fbmkto.hooks.freshbooks import FreshBooksHook

DEFAULT_EVENTS = "invoice,payment,client"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "authorize",
        help="authorize a FreshBooks connection (OAuth code flow) and store its token pair",
        description="Print the FreshBooks authorize URL, read the URL you were redirected to (or take --code / "
        "--redirect-url), exchange the code and store the encrypted token pair in the state DB.",
    )
    p.add_argument("--conn-id", default="freshbooks_default", help="the freshbooks connection")
    p.add_argument("--code", help="an authorization code (non-interactive)")
    p.add_argument("--redirect-url", help="the full URL FreshBooks redirected to (non-interactive)")
    accounts.add_state_conn_argument(p)
    p.set_defaults(func=run_authorize)

    w = sub.add_parser("webhooks", help="manage FreshBooks webhook callbacks")
    wsub = w.add_subparsers(dest="webhooks_command", metavar="ACTION", required=True)
    reg = wsub.add_parser("register", help="create callbacks for events and verify them")
    reg.add_argument("--url", required=True, help="public URL of the receiver: …/fbmkto/webhooks/freshbooks/<account>")
    reg.add_argument("--events", default=DEFAULT_EVENTS, help=f"comma-separated events (default {DEFAULT_EVENTS})")
    reg.add_argument("--wait", type=float, default=30.0, help="seconds to wait for FreshBooks' verify request")
    reg.set_defaults(func=run_register)
    ver = wsub.add_parser("verify", help="complete a callback's verification with the verifier the receiver stored")
    ver.add_argument("--id", type=int, required=True, help="callback id")
    ver.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the verify request")
    ver.set_defaults(func=run_verify)
    lst = wsub.add_parser("list", help="list callbacks")
    lst.set_defaults(func=run_list)
    dele = wsub.add_parser("delete", help="delete a callback")
    dele.add_argument("--id", type=int, required=True, help="callback id")
    dele.set_defaults(func=run_delete)
    for action in (reg, ver, lst, dele):
        action.add_argument("--conn-id", default="freshbooks_default", help="the freshbooks connection")
        accounts.add_state_conn_argument(action)


def _hook(args: argparse.Namespace) -> FreshBooksHook:
    from airflow_provider_fbmkto.hooks.freshbooks import FreshBooksHook

    return FreshBooksHook(args.conn_id, state_conn_id=args.state_conn_id)


def _code_from(text: str, expected_state: str | None) -> str:
    """The code in a pasted redirect URL (or a bare pasted code); checks ``state`` when we sent one."""
    text = text.strip()
    if not text:
        raise ConfigError("nothing was pasted; run fbmkto authorize again and paste the URL you were redirected to")
    if "://" not in text and "code=" not in text:
        return text
    query = parse_qs(urlsplit(text).query if "://" in text else text)
    if "error" in query:
        raise AuthError(f"FreshBooks refused the authorization: {query['error'][0]}")
    codes = query.get("code")
    if not codes:
        raise ConfigError("the pasted URL has no 'code' parameter; paste the full URL you were redirected to")
    if expected_state is not None and query.get("state", [expected_state])[0] != expected_state:
        raise AuthError("the pasted URL's state does not match this authorization; start again")
    return codes[0]


def run_authorize(args: argparse.Namespace) -> int:
    from airflow_provider_fbmkto.hooks.freshbooks_auth import businesses

    hook = _hook(args)
    if args.code:
        code = args.code.strip()
    elif args.redirect_url:
        code = _code_from(args.redirect_url, None)
    else:
        state = secrets.token_urlsafe(16)
        print("Open this URL, sign in to FreshBooks and allow access:\n")
        print(f"  {hook.tokens.authorize_url(state)}\n")
        print("Then paste the URL your browser was redirected to (it contains ?code=…):", flush=True)
        code = _code_from(sys.stdin.readline(), state)
    pair = hook.exchange_code(code)
    print(f"Stored the encrypted FreshBooks token pair of {args.conn_id!r} in the state DB ({hook.state.url}).")
    print(f"Granted scopes: {pair.scope or '(not reported)'}")
    me = hook.identity()
    who = me.get("email") or me.get("id") or "?"
    print(f"Authorized as {who}.")
    for b in businesses(me):
        print(f"  business {b.get('id')} {b.get('name') or ''}: account_id {b.get('account_id')}")
    try:
        print(f"Syncs will use account_id {hook.account_id}.")
    except ConfigError as exc:
        print(f"Note: {exc}")
    return 0


def _complete(hook: FreshBooksHook, callback_id: int, wait: float, conn_id: str) -> bool:
    verifiers = hook.state.verifiers
    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        found = verifiers.pending(str(callback_id))
        if found is not None:
            account, verifier = found
            hook.verify_webhook(callback_id, verifier)
            verifiers.confirm(account, str(callback_id))
            print(f"  callback {callback_id}: verified (deliveries for account {account!r} are now accepted)")
            return True
        if time.monotonic() >= deadline:
            print(
                f"  callback {callback_id}: FreshBooks' verification request has not reached the receiver yet "
                "(it must be reachable from the internet). When it has, run: "
                f"fbmkto webhooks verify --conn-id {conn_id} --id {callback_id}"
            )
            return False
        time.sleep(0.5)


def run_register(args: argparse.Namespace) -> int:
    hook = _hook(args)
    events = [e.strip() for e in args.events.split(",") if e.strip()]
    if not events:
        raise ConfigError("--events is empty; give e.g. invoice,payment,client")
    created = [hook.register_webhook(event, args.url) for event in events]
    for webhook in created:
        print(f"created callback {webhook.id} for {webhook.event} -> {webhook.uri}")
    done = [_complete(hook, w.id, args.wait, args.conn_id) for w in created]
    return 0 if all(done) else 1


def run_verify(args: argparse.Namespace) -> int:
    hook = _hook(args)
    return 0 if _complete(hook, args.id, args.wait, args.conn_id) else 1


def run_list(args: argparse.Namespace) -> int:
    hook = _hook(args)
    rows = list(hook.list_webhooks())
    if not rows:
        print("no callbacks")
    for w in rows:
        print(f"{w.id}\t{w.event}\t{'verified' if w.verified else 'unverified'}\t{w.uri}")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    hook = _hook(args)
    hook.delete_webhook(args.id)
    hook.state.verifiers.forget(str(args.id))
    print(f"deleted callback {args.id}")
    return 0
