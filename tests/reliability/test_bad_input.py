"""Bad input through the entry points a user meets, and the secrets scan after the runs.

One world: a first DAG run writes the account's records; then every bad input is tried — broken or contradictory
account configs (the DAG files), a missing connection and a wrong Fernet key (``fbmkto check``, the same hook
code the tasks run), a wrong Marketo secret (a DAG run), a CRM-synced Marketo (a DAG run), forged / replayed /
oversized / wrongly typed webhook deliveries (the plugin's receiver over HTTP). Each must answer with the
specific error naming the field or the fix, and Marketo must still hold everything written before. At the end,
task logs, the Airflow metadata DB (XCom), staging files, reports and the state DB are searched for every
secret and token the run used.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import secrets
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from cryptography.fernet import Fernet
from fastapi import FastAPI

from airflow_provider_fbmkto.dag_factory import build_dags
from airflow_provider_fbmkto.plugins.fbmkto_plugin import create_app
from airflow_provider_fbmkto.sync.config_schema import ConfigError
from airflow_provider_fbmkto.testing.freshbooks import SIGNATURE_HEADER, sign
from airflow_provider_fbmkto.testing.server import ThreadedServer
from tests.e2e.conftest import DAGS, World, day
from tests.reliability.conftest import (
    SENT,
    Act,
    Figures,
    Tally,
    error_text,
    failed,
    first_line,
    open_world,
    output,
    overdue,
    paid,
    sent,
    set_conn,
)

pytestmark = pytest.mark.e2e

CONFIG = """\
accounts:
  - name: acme
    freshbooks_conn_id: freshbooks_acme
    marketo_conn_id: marketo_default
    schedule: "@daily"
    timezone: UTC
    start_date: "2025-01-01"
    retries: 0
    webhooks: true
    matching:
      rules:
        - {{domain: bigco.io, company: BigCo Holdings}}
    segments: {{paid_list_id: {paid}, overdue_list_id: {overdue}}}
"""

#: (key, what is wrong, edit of the good config, text the error must contain, whether acme keeps its DAG)
CONFIG_CASES: list[tuple[str, str, Any, list[str], bool]] = [
    (
        "yaml",
        "YAML syntax error",
        lambda t: t.replace('schedule: "@daily"', 'schedule: "@daily'),
        ["YAML syntax error at line", "fix the YAML there"],
        False,
    ),
    (
        "unknown_key",
        "misspelt key (`matchin:`)",
        lambda t: t.replace("    matching:", "    matchin:"),
        ["account 'acme'", "matchin: unknown key; did you mean 'matching'?"],
        False,
    ),
    (
        "timezone",
        "unknown time zone",
        lambda t: t.replace("timezone: UTC", "timezone: Mars/Olympus_Mons"),
        ["timezone: unknown time zone 'Mars/Olympus_Mons'", "IANA name"],
        False,
    ),
    (
        "missing_conn",
        "no FreshBooks connection id",
        lambda t: t.replace("    freshbooks_conn_id: freshbooks_acme\n", ""),
        ["freshbooks_conn_id: missing", "`freshbooks_conn_id: freshbooks_acme`"],
        False,
    ),
    (
        "rule",
        "rule with both `email` and `domain`",
        lambda t: t.replace(
            "{domain: bigco.io, company: BigCo Holdings}", "{domain: bigco.io, email: a@b.io, company: X}"
        ),
        ["matching.rules[0]: has both 'email' and 'domain'", "give exactly one of client_id, email, domain"],
        False,
    ),
    (
        "contradictory",
        "a second account writing the same company (no `shared: true`)",
        lambda t: (
            t
            + """  - name: globex
    freshbooks_conn_id: freshbooks_globex
    marketo_conn_id: marketo_default
    schedule: "@daily"
    start_date: "2025-01-01"
    matching:
      rules:
        - {domain: bigco.io, company: BigCo Holdings}
"""
        ),
        ["account 'globex'", "also written by account 'acme'", "set 'shared: true'"],
        True,
    ),
]


@pytest.fixture
def receiver() -> Iterator[str]:
    """The plugin's FastAPI app mounted at /fbmkto, as the api-server serves it, over real HTTP."""
    api = FastAPI()
    api.mount("/fbmkto", create_app())
    with ThreadedServer(api) as server:
        yield f"{server.url}/fbmkto/webhooks/freshbooks/acme"


def _marketo_state(w: World) -> tuple[set[Any], set[str], set[str]]:
    """What Marketo holds, by identity: activities (lead, type, primary value, date), lead e-mails, companies."""
    return (
        set(w.activity_keys()),
        {lead["email"] for lead in w.mkto.leads()},
        {c["externalCompanyId"] for c in w.mkto.companies()},
    )


def _kept(w: World, before: tuple[set[Any], set[str], set[str]]) -> tuple[int, int]:
    """(records of ``before`` Marketo still holds, records of ``before`` it no longer holds)."""
    now = _marketo_state(w)
    kept = sum(len(b & n) for b, n in zip(before, now, strict=True))
    return kept, sum(len(b) for b in before) - kept


def _event_fields(w: World, name: str, object_id: int) -> dict[str, str]:
    return {
        "name": name,
        "object_id": str(object_id),
        "account_id": w.fb.account_id,
        "business_id": str(w.fb.business_id),
        "identity_id": str(w.fb.identity_id),
        "user_id": str(w.fb.user_id),
    }


def _post(url: str, data: Any, **headers: str) -> requests.Response:
    return requests.post(url, data=data, headers=headers, timeout=10)


def test_bad_inputs_give_actionable_errors_and_lose_nothing_and_no_secret_leaks(
    airflow_home, tmp_path, receiver: str, figures: Figures, capsys: pytest.CaptureFixture[str]
):
    with open_world(airflow_home, tmp_path, CONFIG) as w:
        verifier = f"whv-{secrets.token_hex(16)}"
        set_conn(w, "freshbooks_acme", webhook_verifier=verifier)
        fb = w.fb
        ann = fb.add_client(fname="Ann", lname="Lee", email="ann@bigco.io")
        cat = fb.add_client(fname="Cat", lname="Poe", email="cat@gmail.com")
        inv = fb.add_invoice(customerid=ann["id"], create_date=day(5).isoformat(), amount="100.00")
        old = fb.add_invoice(customerid=ann["id"], create_date=day(60).isoformat(), amount="80.00")
        pay = fb.add_payment(invoiceid=old["id"], amount="80.00", date=day(5).isoformat())
        late = fb.add_invoice(customerid=cat["id"], create_date=day(20).isoformat(), due_offset_days=14, amount="9.00")
        emailed = fb.add_invoice(customerid=cat["id"], create_date=day(90).isoformat(), amount="33.00")
        decoy_inv = fb.add_invoice(customerid=ann["id"], create_date=day(90).isoformat(), amount="12.00")
        expect = Tally(
            {sent("ann@bigco.io", inv), paid("ann@bigco.io", pay), overdue("cat@gmail.com", late)},
            {"ann@bigco.io", "cat@gmail.com"},
            {"fbmkto:bigco-holdings"},
        )
        rows: list[tuple[str, str, str, str, tuple[int, int]]] = []  # (key, input, caught by, error, kept/lost)

        # -- one genuine invoice.sendByEmail delivery, synced by the first run -----------------------------------
        fields = _event_fields(w, "invoice.sendByEmail", emailed["id"])
        signature = sign(fields, verifier)
        before_post = datetime.now(timezone.utc).replace(microsecond=0)
        genuine = _post(receiver, fields, **{SIGNATURE_HEADER: signature})
        after_post = datetime.now(timezone.utc)
        assert (genuine.status_code, genuine.json()["message"]) == (200, "stored")
        w.ok(day(4))
        (event_activity,) = [
            a for a in w.mkto.activities() if a.get("primaryAttributeValue") == emailed["invoice_number"]
        ]
        when = datetime.fromisoformat(event_activity["activityDate"].replace("Z", "+00:00"))
        assert before_post <= when <= after_post  # dated at the delivery, not at the invoice date
        expect.activities.add(Act("cat@gmail.com", SENT, emailed["invoice_number"], when))
        expect.check(w)
        snapshot = _marketo_state(w)
        companies_as_written = sorted(json.dumps(c, sort_keys=True) for c in w.mkto.companies())

        # -- webhook deliveries that must be refused: for a decoy invoice, so that an accepted one would show up
        #    as an unexpected Invoice Sent activity in the last run; and the genuine delivery replayed -----------
        decoy = _event_fields(w, "invoice.sendByEmail", decoy_inv["id"])
        good_sig = sign(decoy, verifier)
        for key, what, resp, answer in (
            (
                "webhook_forged",
                "webhook delivery with a wrong signature",
                _post(receiver, decoy, **{SIGNATURE_HEADER: sign(decoy, "not-the-verifier")}),
                (401, "bad or missing signature"),
            ),
            (
                "webhook_unsigned",
                "webhook delivery without a signature",
                _post(receiver, decoy),
                (401, "bad or missing signature"),
            ),
            (
                "webhook_oversized",
                "webhook delivery over 64 KB",
                _post(receiver, {**decoy, "pad": "x" * 70_000}, **{SIGNATURE_HEADER: good_sig}),
                (413, "body over 65536 bytes"),
            ),
            (
                "webhook_content_type",
                "webhook delivery as JSON",
                requests.post(receiver, json=decoy, headers={SIGNATURE_HEADER: good_sig}, timeout=10),
                (415, "FreshBooks webhooks are application/x-www-form-urlencoded"),
            ),
            (
                "webhook_replayed",
                "the genuine delivery again, after it was synced",
                _post(receiver, fields, **{SIGNATURE_HEADER: signature}),
                (200, "duplicate"),
            ),
        ):
            assert (resp.status_code, resp.json()["message"]) == answer, key
            error = f"HTTP {resp.status_code}: {resp.json()['message']}"
            rows.append((key, what, "webhook receiver (plugin)", error, _kept(w, snapshot)))

        # -- account configs: what the DAG files make of them ------------------------------------------------------
        good = w.config.read_text()
        for key, what, edit, needles, acme_keeps_dag in CONFIG_CASES:
            broken = tmp_path / f"broken_{key}.yaml"
            broken.write_text(edit(good))
            env = {**os.environ, "FBMKTO_CONFIG": str(broken)}
            if key == "yaml":  # a file-level problem: the DAG file itself shows the import error
                with pytest.raises(ConfigError, match="YAML syntax error"):
                    build_dags(DAGS / "freshbooks_to_marketo.py", env)
            else:  # an account-level problem: that account has no DAG, the other accounts keep theirs
                dags, _ = build_dags(DAGS / "freshbooks_to_marketo.py", env)
                assert ("fbmkto_sync__acme" in dags) is acme_keeps_dag, key
            os.environ["FBMKTO_CONFIG"] = str(broken)
            try:
                with pytest.raises(ConfigError) as err:  # the import error Airflow shows for the check DAG file
                    runpy.run_path(str(DAGS / "fbmkto_config_check.py"))
            finally:
                os.environ["FBMKTO_CONFIG"] = str(w.config)
            message = str(err.value)
            for needle in needles:
                assert needle in message, (key, message)
            line = next(x.strip(" -") for x in message.splitlines() if needles[-1] in x)
            line = line.replace(str(broken), "fbmkto_accounts.yaml")
            caught = "DAG import error (fbmkto_config_check.py)"
            rows.append((f"config_{key}", f"account config: {what}", caught, line, _kept(w, snapshot)))

        # -- connections and keys: `fbmkto check`, the same hook code the tasks run --------------------------------
        capsys.readouterr()
        saved = os.environ.pop("AIRFLOW_CONN_FRESHBOOKS_ACME")
        try:
            assert w.cli("check") == 1
        finally:
            os.environ["AIRFLOW_CONN_FRESHBOOKS_ACME"] = saved
        line = first_line(capsys.readouterr().out, "[FAIL]", "freshbooks_acme")
        assert "FreshBooks connection 'freshbooks_acme' is not defined; add it with: airflow connections add" in line
        rows.append(
            ("conn_missing", "FreshBooks connection missing", "fbmkto check / extract task", line, _kept(w, snapshot))
        )

        key = os.environ["FBMKTO_FERNET_KEY"]
        os.environ["FBMKTO_FERNET_KEY"] = Fernet.generate_key().decode()
        try:
            assert w.cli("check") == 1
        finally:
            os.environ["FBMKTO_FERNET_KEY"] = key
        line = first_line(capsys.readouterr().out, "[FAIL]", "freshbooks_acme")
        assert "cannot be decrypted with the configured Fernet key; restore the key or re-run fbmkto authorize" in line
        rows.append(
            (
                "fernet_wrong",
                "wrong Fernet key for the state DB",
                "fbmkto check / extract task",
                line,
                _kept(w, snapshot),
            )
        )

        # -- a wrong Marketo secret: the next window is planned, its load fails, nothing is written ----------------
        nia = fb.add_client(fname="Nia", lname="Cho", email="nia@newco.io")
        nia_inv = fb.add_invoice(customerid=nia["id"], create_date=day(4).isoformat(), amount="45.00")
        good_conn = w.env["AIRFLOW_CONN_MARKETO_DEFAULT"]
        set_conn(w, "marketo_default", password="wrong-secret")
        out = failed(w, day(3))
        line = error_text(first_line(out, "AuthError", "Marketo rejected the client id/secret"))
        assert "of connection 'marketo_default' (HTTP 401 from identity); check login/password" in line
        rows.append(
            ("marketo_secret_wrong", "wrong Marketo client secret", "load task (DAG run)", line, _kept(w, snapshot))
        )
        assert all(lead["email"] != "nia@newco.io" for lead in w.mkto.leads())
        w.env["AIRFLOW_CONN_MARKETO_DEFAULT"] = os.environ["AIRFLOW_CONN_MARKETO_DEFAULT"] = good_conn

        # -- the fix, on a Marketo whose companies a CRM sync now owns: companies skipped with 1018, the rest
        #    written, the rows planned by the failed run included ------------------------------------------------
        w.mkto.model.crm_synced = "response"
        w.fb.expire_access_tokens()  # the fixed run also refreshes the FreshBooks token (for the secrets scan)
        out = w.ok(day(3))
        assert "Marketo syncs companies with a CRM (1018)" in out
        expect.activities.add(sent("nia@newco.io", nia_inv))
        expect.leads.add("nia@newco.io")
        assert "fbmkto:newco.io" not in {c["externalCompanyId"] for c in w.mkto.companies()}
        counts = expect.check(w)
        assert w.lead("nia@newco.io")["fbPaymentStatus"] == "current"  # the billing facts are on the lead
        (note,) = set(re.findall(r"Marketo syncs companies with a CRM \(1018\)[^'\"]*", out))
        caught = "load task (DAG run); report"
        rows.append(("crm_synced", "Marketo companies owned by a CRM sync", caught, note, _kept(w, snapshot)))
        assert sorted(json.dumps(c, sort_keys=True) for c in w.mkto.companies()) == companies_as_written
        # expect.check above also proves: no Invoice Sent for the decoy of the refused deliveries, and the replayed
        # genuine delivery did not come back as a second activity
        assert counts["lost"] == 0

        for order, (key_, what, caught_by, error, (kept, lost)) in enumerate(rows):
            assert lost == 0, (key_, kept, lost)
            figures.bad_input(key_, order=order, input=what, caught_by=caught_by, error=error, kept=kept, lost=lost)

        # -- secrets scan ----------------------------------------------------------------------------------------
        scan(w, tmp_path, figures, verifier)


def _secrets(w: World, verifier: str) -> dict[str, str]:
    found: dict[str, str] = {
        "FreshBooks client secret": w.fb.client_secret,
        "Marketo client secret": w.mkto.client_secret,
        "webhook verifier": verifier,
        "state DB Fernet key": w.env["FBMKTO_FERNET_KEY"],
    }
    with w.fb.oauth.lock:
        for n, token in enumerate(w.fb.oauth.access):
            found[f"FreshBooks access token #{n + 1}"] = token
        for n, token in enumerate(w.fb.oauth.refresh):
            found[f"FreshBooks refresh token #{n + 1}"] = token
    for n, token in enumerate(list(w.mkto.model.tokens._expiry)):
        found[f"Marketo access token #{n + 1}"] = token
    return found


def _files(root: Path, pattern: str = "**/*") -> list[Path]:
    return sorted(p for p in root.glob(pattern) if p.is_file()) if root.exists() else []


def scan(w: World, tmp_path: Path, figures: Figures, verifier: str) -> None:
    home = w.home
    places: dict[str, list[Path]] = {
        "task logs ($AIRFLOW_HOME/logs)": _files(home / "logs"),
        "Airflow metadata DB incl. XCom (airflow.db*)": _files(home, "airflow.db*"),
        "staging files ($AIRFLOW_HOME/fbmkto/staging)": _files(home / "fbmkto" / "staging"),
        "reports ($AIRFLOW_HOME/fbmkto/reports)": _files(home / "fbmkto" / "reports"),
        "state DB as stored (state.db*)": _files(tmp_path, "state.db*"),
    }
    assert places["Airflow metadata DB incl. XCom (airflow.db*)"], "no metadata DB to scan"
    assert places["state DB as stored (state.db*)"], "no state DB to scan"
    assert places["reports ($AIRFLOW_HOME/fbmkto/reports)"], "no report to scan"
    assert places["staging files ($AIRFLOW_HOME/fbmkto/staging)"], "the failed run's staging should be kept"
    blobs = {name: [p.read_bytes() for p in paths] for name, paths in places.items()}
    blobs["DAG run console output"] = [output(p).encode() for p in w.runs]
    found = _secrets(w, verifier)
    assert sum(1 for k in found if "FreshBooks access" in k) >= 2  # authorize + refreshes happened
    assert any("Marketo access" in k for k in found)
    hits: dict[str, int] = {}
    for label, secret in found.items():
        forms = {secret.encode(), quote(secret, safe="").encode()}
        hits[label] = sum(blob.count(form) for blobs_ in blobs.values() for blob in blobs_ for form in forms)
    leaked = {k: v for k, v in hits.items() if v}
    assert leaked == {}, leaked
    # the scan looks in the right places: FreshBooks data that is not secret is there to be found
    assert any(b"ann@bigco.io" in blob for blob in blobs["state DB as stored (state.db*)"])
    figures.secrets(
        places={name: len(paths) for name, paths in places.items()} | {"DAG run console output": len(w.runs)},
        secrets={
            "FreshBooks client secret": hits["FreshBooks client secret"],
            "FreshBooks access tokens": sum(v for k, v in hits.items() if "FreshBooks access" in k),
            "FreshBooks refresh tokens": sum(v for k, v in hits.items() if "FreshBooks refresh" in k),
            "Marketo client secret": hits["Marketo client secret"],
            "Marketo access tokens": sum(v for k, v in hits.items() if "Marketo access" in k),
            "webhook verifier": hits["webhook verifier"],
            "state DB Fernet key": hits["state DB Fernet key"],
        }
        | {"tokens checked": sum(1 for k in found if "token" in k)},
    )
