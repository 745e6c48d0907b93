"""Render ``docs/reliability.md`` from the figures the reliability tests wrote.

    rm -f test-artifacts/reliability.json
    uv run pytest tests/reliability          # writes test-artifacts/reliability.json
    uv run python tests/reliability/render_matrix.py

Every number in the fault, bad-input, property and secrets tables comes from that JSON file, i.e. from what the
tests observed on the emulators' call logs and in Marketo's state at the end of each row. Rows that existing
tests already cover end to end are listed with a pointer to the test (and what it asserts), without figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEFAULT_INPUT = REPO / "test-artifacts" / "reliability.json"
DEFAULT_OUTPUT = REPO / "docs" / "reliability.md"

#: Matrix rows covered by earlier suites: (order, row, test, what it asserts).
COVERED_ELSEWHERE = [
    (
        10,
        "Marketo 606 rate-limit storm",
        "tests/e2e/test_e2e_faults.py::test_606_storm_is_absorbed_without_failing_the_run",
        "DAG run succeeds through 3 injected 606; 3 activities, duplicates() == 0, 606 on the call log",
    ),
    (
        20,
        "Marketo 615 concurrency limit",
        "tests/hooks_marketo/test_marketo_limits_wire.py::test_1000_writes_use_the_minimum_calls_and_absorb_forced_606_615",
        "hook level; through a DAG run as part of the 604/608/611 row below (615 on the lead upsert)",
    ),
    (
        55,
        "Marketo 5xx storm on activity writes (503, not applied)",
        "tests/e2e/test_e2e_faults.py::test_5xx_storm_fails_the_load_then_a_rerun_writes_exactly_the_missing",
        "load fails, nothing written; the rerun writes exactly the 5 missing, duplicates() == 0",
    ),
    (
        70,
        "Marketo read timeout on an activity write (answer lost, write applied)",
        "tests/e2e/test_e2e_faults.py::test_lost_answer_of_an_activity_batch_is_resolved_by_reading_back",
        "run fails; the rerun reads the 4 activities back (confirmed_written), sends no write, duplicates() == 0",
    ),
    (
        85,
        "Crash before / after send, stale in-flight rows of another run",
        "tests/pipeline/test_loader_resolution.py",
        "loader level against both emulators: every activity row written, exactly one activity each",
    ),
    (
        115,
        "FreshBooks client read timeout",
        "tests/hooks_freshbooks/test_fb_errors.py::test_read_timeout_is_set_and_retried",
        "hook level (the DAG has no setting for a short FreshBooks read timeout; the DAG-level row uses stalls "
        "answered 504)",
    ),
    (
        125,
        "FreshBooks concurrent refresh across processes",
        "tests/hooks_freshbooks/test_fb_concurrency.py::test_eight_processes_with_an_expired_token_refresh_once",
        "8 processes with an expired token: one refresh call, every process ends with the new pair",
    ),
]

#: Bad inputs covered by earlier suites: (input, test, what it asserts).
BAD_INPUT_ELSEWHERE = [
    (
        "half-provisioned Marketo (type without attributes, draft type, missing list or field)",
        "tests/e2e/test_e2e_faults.py::test_half_provisioned_marketo_fails_the_load_at_once_naming_the_fix_then_runs"
        "_after_setup, tests/pipeline/test_preflight.py",
        "the load fails once (no retry) naming each problem and its fix, nothing sent; after setup-marketo the run "
        "writes every activity, none skipped",
    ),
    (
        "unknown connection extra, bad redirect URI, wrong FreshBooks client secret",
        "tests/hooks_freshbooks/test_fb_auth.py, tests/hooks_freshbooks/test_fb_errors.py",
        "ConfigError / AuthError naming the extra, the URI rule or the secret",
    ),
    (
        "bad Marketo connection fields (limits, budget, host)",
        "tests/hooks_marketo/test_marketo_units.py::test_creds_errors_name_the_problem",
        "ConfigError naming the field",
    ),
    (
        "every account-config field",
        "tests/sync/test_sync_config.py",
        "one AccountConfigError per problem, naming file, account and field",
    ),
]

KNOWN_LIMITS = """\
## Known limits found while building this matrix

* **A lost answer and a very fast retry (fixed).** Marketo may apply an activity write *after* the client gave up
  (read timeout). This matrix first showed that a retry reading the batch back *before* that late write landed
  resent it (3 duplicates with a 1 s retry delay). The ledger now records when a batch went out (`sent_at`, set
  again when the send is given up); a row the read-back does not find goes back to pending only if it never went
  out or went out more than 2 x the Marketo connection's `request_timeout` ago. Otherwise the retry waits out that
  window and reads the batch back again. The Airflow-retry row runs this hard case (1 s retry delay, write
  applied 3 s after a 2 s read timeout): the retry waits, confirms the 3 activities and sends nothing again.
* **An in-doubt batch and a manual rerun within 10 minutes.** Activity rows left in doubt by a failed run are
  settled at once only by a retry of *that* run (Airflow's task retry) or, for another run, once they are older
  than 10 minutes (`STALE_AFTER`); a new manual run within those 10 minutes leaves them in flight (nothing is
  sent twice, but they are written only by a later run). The SIGKILL row therefore retries the load inside the
  killed run (`airflow tasks test … load <run id>`), as Airflow's retry of a dead task does.
* **Task logs.** `airflow dags test` runs tasks in-process and writes their logs to its console, not to
  `$AIRFLOW_HOME/logs`; the secrets scan therefore searches the console output of every DAG run as the task logs.
* **Currencies.** Marketo gets one number per field: `fbOutstandingBalance` is in the account's dominant
  currency; balances in other currencies are not converted and not added (a EUR-only client shows 0 there,
  while its activities carry their EUR amounts and its status is still computed from every invoice).
"""


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _faults(faults: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in faults.items())


def render(data: dict[str, Any]) -> str:
    matrix = data.get("matrix", {})
    out = [
        "# Reliability and security matrix",
        "",
        "Every fault row below is a test in `tests/reliability/` that drives real DAG runs (`airflow dags test`, "
        "and `airflow tasks test` where a task is retried inside a killed run) against the FreshBooks and "
        "Marketo emulators, with a fresh state DB. At the end of each row the test compares what Marketo holds "
        "with the expectation it computed by hand from the records it created: **records** = activities + "
        "leads + companies expected, **written** = those found in Marketo, **duplicates** = activities Marketo "
        "holds more than once, **lost** = expected records Marketo does not hold. Faults are counted on the "
        "emulators' call logs (a fault that never fired fails the test). Rows marked *shared run* get their "
        "figures from one scenario that injects several faults.",
        "",
        "Regenerate: `rm -f test-artifacts/reliability.json && uv run pytest tests/reliability && "
        "uv run python tests/reliability/render_matrix.py` (figures: `test-artifacts/reliability.json`).",
        "",
        "## Faults",
        "",
        "| Fault | Faults observed | DAG runs | Records | Written | Duplicates | Lost | Outcome | Test |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows: list[tuple[int, str]] = []
    shared: dict[tuple[str, int, int], list[str]] = {}
    for key, r in matrix.items():
        shared.setdefault((r["test"], r["runs"], r["records"]), []).append(key)
    for r in matrix.values():
        mark = " *(shared run)*" if len(shared[(r["test"], r["runs"], r["records"])]) > 1 else ""
        test = r["test"].split("::")
        rows.append(
            (
                r["order"],
                f"| {_cell(r['row'])}{mark} | {_cell(_faults(r['faults']))} | {r['runs']} | {r['records']} | "
                f"{r['written']} | **{r['duplicates']}** | **{r['lost']}** | {_cell(r['outcome'])} | "
                f"`{test[0].split('/')[-1]}::{test[-1]}` |",
            )
        )
    for order, row, test, asserts in COVERED_ELSEWHERE:
        rows.append(
            (order, f"| {row} *(covered by an earlier suite)* | — | — | — | — | — | — | {asserts} | `{test}` |")
        )
    out += [line for _, line in sorted(rows)]
    total_dup = sum(r["duplicates"] for r in matrix.values())
    total_lost = sum(r["lost"] for r in matrix.values())
    runs = sum({r["test"]: r["runs"] for r in matrix.values()}.values())
    out += [
        "",
        f"Totals over the {len(matrix)} measured rows ({len({r['test'] for r in matrix.values()})} tests, "
        f"{runs} DAG/task runs): duplicates **{total_dup}**, lost **{total_lost}**.",
        "",
        "## Bad input",
        "",
        "One DAG run writes the account's records first; then each bad input is tried. The error column is the "
        "text the test observed (file paths shortened); *kept* counts the records Marketo held before and still "
        "holds afterwards, *lost* those it no longer holds.",
        "",
        "| Input | Where it is caught | Error the user gets | Kept | Lost |",
        "|---|---|---|---|---|",
    ]
    bad = sorted(data.get("bad_input", {}).values(), key=lambda r: r["order"])
    out += [
        f"| {_cell(r['input'])} | {_cell(r['caught_by'])} | {_cell(r['error'])} | {r['kept']} | **{r['lost']}** |"
        for r in bad
    ]
    out += [f"| {_cell(i)} *(earlier suite)* | `{t}` | {_cell(a)} | — | — |" for i, t, a in BAD_INPUT_ELSEWHERE]
    out += [
        "",
        "## Property tests (hypothesis, derandomized)",
        "",
        "`tests/sync` already checks search-day cover in any UTC offset, Eastern wall-time round trips, order "
        "independence of one window's plan, rule company keys and worst-of company status. Added:",
        "",
        "| Claim | Examples | Test |",
        "|---|---|---|",
    ]
    for r in sorted(data.get("properties", {}).values(), key=lambda r: r["test"]):
        extra = {k: v for k, v in r.items() if k not in ("claim", "examples", "test")}
        more = "".join(f"; {k.replace('_', ' ')} {v}" for k, v in extra.items())
        out.append(f"| {_cell(r['claim'])} | {r['examples']}{more} | `{r['test'].split('::')[-1]}` |")
    scan = data.get("secrets", {}).get("scan")
    if scan:
        out += [
            "",
            "## Secrets scan",
            "",
            "After the bad-input scenario's three DAG runs (one with a FreshBooks token refresh, one failed run "
            "whose staging files stay), every secret and token the run used — taken from the emulators' own "
            "OAuth and token models — is searched, raw and URL-encoded, in the bytes of:",
            "",
            "| Place | Files (or outputs) scanned |",
            "|---|---|",
        ]
        out += [f"| {_cell(p)} | {n} |" for p, n in scan["places"].items()]
        out += ["", "| Secret | Hits |", "|---|---|"]
        out += [f"| {_cell(s)} | **{n}** |" for s, n in scan["secrets"].items() if s != "tokens checked"]
        out += ["", f"Tokens checked: {scan['secrets'].get('tokens checked', 0)}. Test: `{scan['test']}`."]
    suite = data.get("suite", {})
    if suite:
        secs = max(v["seconds"] for v in suite.values())
        tests = max(v["tests"] for v in suite.values())  # every xdist worker collects the whole suite
        how = f"{len(suite)} pytest-xdist workers" if len(suite) > 1 else "serially"
        out += ["", f"Last run of the suite: {tests} tests, {secs:.0f} s wall time ({how})."]
    out += ["", KNOWN_LIMITS]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if not args.input.exists():
        print(f"{args.input} does not exist; run: uv run pytest tests/reliability", file=sys.stderr)
        return 1
    text = render(json.loads(args.input.read_text()))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
