"""The emulator's own HTTP control API under ``/_emulator/`` (JSON in, JSON out, 4xx ``{"error", "field"}``).

=========================================== =================================================================
``GET    /_emulator``                       account, business, record counts, pending faults
``POST   /_emulator/reset``                 back to the constructed state (``{"reseed": false}``: empty)
``POST   /_emulator/seed``                  ``{"seed", "clients", "invoices_per_client", "months", "as_of",
                                            "append"}``; replaces the data unless ``append`` is true
``POST   /_emulator/records/{kind}``        create a client/invoice/payment from its fields → 201 record
``PATCH  /_emulator/records/{kind}/{id}``   change fields (bumps ``updated``) → record
``DELETE /_emulator/records/{kind}/{id}``   soft-delete (``vis_state`` 1) → record
``POST   /_emulator/invoices/{id}/send``    e-mail an invoice (``invoice.sendByEmail``) → record
``POST   /_emulator/faults``                ``{"kind", "count", "path_prefix", "retry_after", "delay"}`` → 201
``DELETE /_emulator/faults``                drop pending faults
``GET    /_emulator/calls``                 every API request received (``?path_prefix=`` filters)
``DELETE /_emulator/calls``                 forget them
``POST   /_emulator/code``                  ``{"scopes", "redirect_uri"}`` → ``{"code"}`` (the user clicked Allow)
``POST   /_emulator/expire-tokens``         every access token expires now
``POST   /_emulator/revoke``                every refresh token is revoked
``GET    /_emulator/deliveries``            webhook deliveries made (fields, signature, status)
``POST   /_emulator/clock``                 ``{"advance_seconds": N}`` moves the emulator clock forward
``GET    /_emulator/behaviour``             the switches for behaviours FreshBooks does not document
``POST   /_emulator/behaviour``             ``{"payment_touches_invoice", "search_zone", "default_per_page"}``
                                            (any subset) → all of them; ``reset`` restores the constructor's
=========================================== =================================================================
"""

from __future__ import annotations

from datetime import date
from typing import Any

from starlette.responses import JSONResponse, Response

from .errors import FieldError
from .faults import validate
from .handlers import Ctx
from .models import Record


def _body(ctx: Ctx, allowed: set[str] | None = None) -> dict[str, Any]:
    if ctx.body_error is not None:
        raise FieldError("body", f"not valid JSON: {ctx.body_error}")
    body = ctx.body or {}
    if not isinstance(body, dict):
        raise FieldError("body", "must be a JSON object")
    if allowed is not None:
        for name in body:
            if name not in allowed:
                raise FieldError(name, f"unknown field; known: {', '.join(sorted(allowed))}")
    return body


def _id(ctx: Ctx) -> int:
    try:
        return int(ctx.params["id"])
    except ValueError:
        raise FieldError("id", f"must be an integer, got {ctx.params['id']!r}", status=404) from None


def _count(body: dict[str, Any], name: str, default: int, low: int = 0, high: int = 1_000_000) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FieldError(name, f"must be an integer between {low} and {high}, got {value!r}")
    return value


def state(ctx: Ctx) -> Response:
    emu = ctx.emu
    return JSONResponse(
        {
            "account_id": emu.account_id,
            "business_id": emu.business_id,
            "now": emu.now().isoformat(),
            "counts": emu.model.counts(),
            "faults": [f.to_dict() for f in emu.faults.pending()],
            "callbacks": [cb.render() for cb in emu.webhooks.callbacks.values()],
            "behaviour": emu.behaviour(),
        }
    )


def reset(ctx: Ctx) -> Response:
    body = _body(ctx, {"reseed"})
    reseed = body.get("reseed", True)
    if not isinstance(reseed, bool):
        raise FieldError("reseed", "must be true or false")
    ctx.emu.reset(reseed=reseed)
    return JSONResponse({"ok": True, "counts": ctx.emu.model.counts()})


def seed(ctx: Ctx) -> Response:
    from .seed import seed as apply_seed

    body = _body(ctx, {"seed", "clients", "invoices_per_client", "months", "as_of", "append"})
    if "seed" not in body:
        raise FieldError("seed", "required: a string (e.g. 'demo') or an integer")
    value = body["seed"]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise FieldError("seed", f"must be a string or an integer, got {value!r}")
    as_of = body.get("as_of")
    if as_of is not None:
        try:
            as_of = date.fromisoformat(as_of) if isinstance(as_of, str) else None
        except ValueError:
            as_of = None
        if as_of is None:
            raise FieldError("as_of", f"must be a date YYYY-MM-DD, got {body['as_of']!r}")
    append = body.get("append", False)
    if not isinstance(append, bool):
        raise FieldError("append", "must be true or false")
    sizes = {
        "clients": _count(body, "clients", 50, 0, 200_000),
        "invoices_per_client": _count(body, "invoices_per_client", 4, 0, 100),
        "months": _count(body, "months", 24, 1, 240),
    }
    if not append:
        ctx.emu.model.reset()
    summary = apply_seed(ctx.emu.model, value, as_of=as_of, **sizes)
    return JSONResponse({"ok": True, "seeded": summary, "counts": ctx.emu.model.counts()})


def _rendered(ctx: Ctx, rec: Record) -> dict[str, Any]:
    with ctx.emu.model.lock:
        return ctx.emu.model.render(rec)


def record_create(ctx: Ctx) -> Response:
    rec = ctx.emu.model.add(ctx.params["kind"], _body(ctx))
    return JSONResponse(_rendered(ctx, rec), status_code=201)


def record_update(ctx: Ctx) -> Response:
    body = _body(ctx)
    if not body:
        raise FieldError("body", "give at least one field to change")
    return JSONResponse(_rendered(ctx, ctx.emu.model.update(ctx.params["kind"], _id(ctx), body)))


def record_delete(ctx: Ctx) -> Response:
    _body(ctx, set())
    kind, record_id = ctx.params["kind"], _id(ctx)
    ctx.emu.delete(kind, record_id)
    return JSONResponse(ctx.emu.get(kind, record_id))


def invoice_send(ctx: Ctx) -> Response:
    return JSONResponse(ctx.emu.send_invoice(_id(ctx)))


def faults_add(ctx: Ctx) -> Response:
    fault = validate(_body(ctx))
    ctx.emu.faults.add(fault)
    return JSONResponse({"queued": fault.to_dict()}, status_code=201)


def faults_clear(ctx: Ctx) -> Response:
    ctx.emu.faults.clear()
    return JSONResponse({"ok": True})


def calls_list(ctx: Ctx) -> Response:
    prefix = ctx.q("path_prefix") or ""
    return JSONResponse({"calls": [c.to_dict() for c in ctx.emu.calls if c.path.startswith(prefix)]})


def calls_clear(ctx: Ctx) -> Response:
    ctx.emu.calls.clear()
    return JSONResponse({"ok": True})


def code(ctx: Ctx) -> Response:
    body = _body(ctx, {"scopes", "redirect_uri"})
    for name in ("scopes", "redirect_uri"):
        if name in body and not isinstance(body[name], str):
            raise FieldError(name, "must be a string")
    kwargs = {k: v for k, v in body.items() if k in ("scopes", "redirect_uri")}
    return JSONResponse({"code": ctx.emu.issue_code(**kwargs)})


def expire_tokens(ctx: Ctx) -> Response:
    ctx.emu.expire_access_tokens()
    return JSONResponse({"ok": True})


def revoke(ctx: Ctx) -> Response:
    ctx.emu.revoke_refresh_tokens()
    return JSONResponse({"ok": True})


def deliveries(ctx: Ctx) -> Response:
    rows = [
        {
            "callback_id": d.callback_id,
            "uri": d.uri,
            "fields": d.fields,
            "signature": d.signature,
            "at": d.at.isoformat(),
            "status": d.status,
            "error": d.error,
        }
        for d in list(ctx.emu.webhooks.deliveries)
    ]
    return JSONResponse({"deliveries": rows})


def clock(ctx: Ctx) -> Response:
    body = _body(ctx, {"advance_seconds"})
    seconds = body.get("advance_seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise FieldError("advance_seconds", f"required: a number of seconds >= 0, got {seconds!r}")
    ctx.emu.advance_clock(seconds)
    return JSONResponse({"now": ctx.emu.now().isoformat()})


def behaviour(ctx: Ctx) -> Response:
    if ctx.method == "GET":
        return JSONResponse(ctx.emu.behaviour())
    body = _body(ctx, {"payment_touches_invoice", "search_zone", "default_per_page"})
    return JSONResponse(ctx.emu.configure(**body))
