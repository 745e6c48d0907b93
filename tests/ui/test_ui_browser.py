"""Real browser, real Airflow: headless Chromium (Debian's chromium + chromium-driver) driven by Selenium.

One embedded Airflow (api-server, scheduler, dag-processor; simple auth manager with a known admin password)
runs the demo account's latest daily interval against the emulators (:mod:`tests.ui.ui_stack`), then the
browser: is refused the status page before logging in; logs in through Airflow's login form; opens
Admin → Connections → Add and checks the FreshBooks and Marketo forms; reads the status page and compares
every number with the state DB; fixes the cause of the skipped rows and presses "Replay failed", and the run
appears in ``airflow dags list-runs`` with ``replay_failed`` in its conf. Screenshots go to
``test-artifacts/ui/``.

Skips with the reason when selenium, chromium or chromedriver is missing (install: ``apt-get install chromium
chromium-driver`` and ``uv pip install selenium``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.moved_today import real_clock_env
from tests.ui.conftest import cell
from tests.ui.ui_stack import ADMIN_PASSWORD, DemoStack, demo_stack

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "ui"
ACCOUNT, DAG_ID = "demo", "fbmkto_sync__demo"
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(420)]


def _binary(env: str, *names: str) -> str | None:
    if os.environ.get(env):
        return os.environ[env]
    for name in names:
        found = shutil.which(name) or (name if os.path.isabs(name) and os.path.exists(name) else None)
        if found:
            return found
    return None


CHROMIUM = _binary("FBMKTO_CHROMIUM", "chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER = _binary("FBMKTO_CHROMEDRIVER", "chromedriver", "/usr/lib/chromium/chromedriver")


def _missing() -> str | None:
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (uv pip install selenium; it belongs in the dev dependency group)"
    if CHROMIUM is None:
        return "no chromium binary (apt-get install chromium, or set FBMKTO_CHROMIUM)"
    if CHROMEDRIVER is None:
        return "no chromedriver (apt-get install chromium-driver, or set FBMKTO_CHROMEDRIVER)"
    return None


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with demo_stack(tmp_path_factory.mktemp("ui") / "airflow") as stack:
        yield stack


@pytest.fixture(scope="module")
def browser(demo: DemoStack) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="fbmkto-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.binary_location = str(CHROMIUM)
    # Chromium cannot run under libfaketime: with FBMKTO_TEST_TODAY the browser keeps the real clock (Airflow's
    # login cookie has no expiry, so only the servers' moved clock matters).
    service = Service(str(CHROMEDRIVER), env=real_clock_env(os.environ))
    driver = webdriver.Chrome(service=service, options=options)
    # A hang guard, not a speed target: on a starved CI machine Airflow's own UI page (the plugin view) once took
    # longer than 30 s to load ("Timed out receiving message from renderer") beside the distributed e2e run.
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:  # element not there yet, stale element, …
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.25)


def done(action: Callable[[], Any], what: str) -> None:
    """Do ``action`` once the element takes it: a click or keys while the page still renders or animates raise
    "element not interactable" (seen on a busy machine) and are tried again until ``wait_for``'s timeout."""
    wait_for(lambda: action() or True, what)


def shot(driver: Any, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / name))


def by_css(driver: Any, css: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, css))


# ---------------------------------------------------------------------------------------------------- tests


def test_status_page_is_refused_without_an_airflow_login(demo: DemoStack, browser: Any):
    status = f"{demo.url}/fbmkto/status"
    assert requests.get(status, timeout=10, allow_redirects=False).status_code == 401
    page = requests.get(status, headers={"Accept": "text/html"}, timeout=10, allow_redirects=False)
    assert page.status_code == 302
    assert urlsplit(page.headers["location"]).path == "/auth/login"
    forged = requests.get(status, headers={"Authorization": "Bearer forged.jwt.token"}, timeout=10)
    assert forged.status_code == 401

    # The webhook receiver stays outside Airflow's login: it answers by its own checks (the demo account has
    # webhooks off, so the receiver's own refusal, not Airflow's 401/302).
    hook = requests.post(
        f"{demo.url}/fbmkto/webhooks/freshbooks/{ACCOUNT}",
        data={"name": "invoice.create", "object_id": "1", "account_id": "ACME01"},
        timeout=10,
        allow_redirects=False,
    )
    assert (hook.status_code, hook.json()["message"]) == (403, "webhooks are off for this account")

    browser.get(status)
    wait_for(lambda: urlsplit(browser.current_url).path == "/auth/login", "the login page")
    wait_for(lambda: by_css(browser, "input[name=username]"), "the login form")
    assert "Marketo" not in browser.page_source
    shot(browser, "01-status-page-needs-login.png")


def test_login_then_add_connection_shows_the_freshbooks_and_marketo_forms(demo: DemoStack, browser: Any):
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{demo.url}/auth/login?next={demo.url}/connections")
    user = wait_for(lambda: by_css(browser, "input[name=username]"), "the login form")[0]
    done(lambda: user.send_keys("admin"), "typing the user name")
    done(lambda: by_css(browser, "input[name=password]")[0].send_keys(ADMIN_PASSWORD), "typing the password")
    done(lambda: by_css(browser, "button[type=submit]")[0].click(), "the login button")
    wait_for(lambda: urlsplit(browser.current_url).path == "/connections", "the connections page")
    add = wait_for(
        lambda: [b for b in by_css(browser, "button") if b.text.strip() == "Add Connection"], "Add Connection"
    )
    done(add[0].click, "the Add Connection button")
    dialog = wait_for(lambda: by_css(browser, "[role=dialog]"), "the Add Connection dialog")[0]

    def choose(conn_type: str) -> None:
        box = wait_for(lambda: by_css(browser, "[role=dialog] input[role=combobox]"), "the type box")[0]
        done(box.click, "the connection type box")
        done(lambda: box.send_keys(conn_type), f"typing {conn_type}")
        wait_for(lambda: [o for o in by_css(browser, "[id*=option]") if o.text == conn_type], f"option {conn_type}")
        done(lambda: box.send_keys(Keys.ENTER), f"choosing {conn_type}")

    def labels() -> set[str]:
        return {label.text.strip() for label in dialog.find_elements("tag name", "label") if label.text.strip()}

    def open_section(title: str) -> None:
        (trigger,) = [b for b in dialog.find_elements("tag name", "button") if b.text.strip() == title]
        if trigger.get_attribute("aria-expanded") != "true":
            done(trigger.click, f"the {title} section")

    def inputs() -> dict[str, Any]:
        return {
            i.get_attribute("name"): i for i in dialog.find_elements("css selector", "input") if i.get_attribute("name")
        }

    choose("FreshBooks")
    wait_for(lambda: {"API base URL", "OAuth client ID", "OAuth client secret"} <= labels(), "FreshBooks labels")
    fields = inputs()
    assert fields["host"].get_attribute("placeholder") == "https://api.freshbooks.com"
    assert fields["password"].get_attribute("type") == "password"
    assert "schema" not in fields
    assert "port" not in fields
    shot(browser, "02-add-connection-freshbooks.png")
    open_section("Extra Fields")
    wait_for(lambda: {"Redirect URI", "Account ID", "Webhook verifier", "Scopes"} <= labels(), "FreshBooks extras")
    assert inputs()["element_webhook_verifier"].get_attribute("type") == "password"
    assert "The https redirect URI registered on the FreshBooks app" in dialog.text
    shot(browser, "03-add-connection-freshbooks-extras.png")

    choose("Marketo")
    open_section("Standard Fields")
    wait_for(lambda: {"REST base URL", "Client ID", "Client secret"} <= labels(), "Marketo labels")
    assert inputs()["host"].get_attribute("placeholder") == "https://123-ABC-456.mktorest.com"
    open_section("Extra Fields")
    wait_for(
        lambda: {"Calls per 20 s", "Concurrent calls", "Daily call budget", "Budget reserve"} <= labels(),
        "Marketo extras",
    )
    shot(browser, "04-add-connection-marketo-extras.png")


def page_numbers(browser: Any) -> dict[str, str]:
    source = browser.page_source
    out: dict[str, str] = {}
    for prefix in ("run", "week"):
        for kind in ("company", "lead", "activity", "list"):
            for status in ("written", "skipped", "failed"):
                key = f"{prefix}-{ACCOUNT}-{kind}-{status}"
                out[key] = cell(source, key)
    out["budget-used"] = cell(source, f"budget-{ACCOUNT}-used")
    return out


def db_numbers(demo: DemoStack) -> dict[str, str]:
    db = demo.state_db()
    (last,) = db.runs.recent(ACCOUNT, limit=1)
    this_run = (last.summary or {})["this_run"]
    week = db.ledger.counts(ACCOUNT, since=datetime.now(timezone.utc) - timedelta(days=7))
    out: dict[str, str] = {}
    for kind in ("company", "lead", "activity", "list"):
        for status in ("written", "skipped", "failed"):
            out[f"run-{ACCOUNT}-{kind}-{status}"] = str(this_run.get(kind, {}).get(status, 0))
            out[f"week-{ACCOUNT}-{kind}-{status}"] = str(week.get((kind, status), 0))
    out["budget-used"] = str(db.budget.used(urlsplit(demo.mkto.url).netloc.lower()))
    return out


def test_status_page_after_a_demo_sync_shows_the_state_db(demo: DemoStack, browser: Any):
    browser.get(f"{demo.url}/fbmkto/status")
    wait_for(lambda: by_css(browser, "[data-testid=accounts]"), "the accounts table")
    shown, stored = page_numbers(browser), db_numbers(demo)
    assert shown == stored
    # Real numbers: the demo window wrote the companies; the account is update-only and none of its people is
    # in Marketo yet, so their leads, activities and list memberships wait, skipped as "no lead in Marketo".
    assert int(shown[f"run-{ACCOUNT}-company-written"]) > 0
    assert int(shown[f"run-{ACCOUNT}-lead-skipped"]) > 0
    skipped = sum(int(shown[f"run-{ACCOUNT}-{kind}-skipped"]) for kind in ("lead", "activity", "list"))
    assert int(shown[f"run-{ACCOUNT}-activity-skipped"]) > 0
    assert shown[f"run-{ACCOUNT}-activity-written"] == "0"
    assert shown[f"run-{ACCOUNT}-lead-written"] == "0"
    assert int(shown["budget-used"]) > 0

    rows = by_css(browser, "[data-testid=failure-row]")
    assert len(rows) == skipped
    assert all("skipped" in r.text and "no lead in Marketo" in r.text for r in rows)
    db = demo.state_db()
    reasons = {r.last_error for r in db.ledger.failures(ACCOUNT)}
    assert all(any(reason and reason in r.text for reason in reasons) for r in rows)
    assert cell(browser.page_source, f"lastrun-{ACCOUNT}-status") == "success"
    assert "authorized; access token valid until" in cell(browser.page_source, f"token-{ACCOUNT}")
    assert by_css(browser, f"svg[data-testid=chart-{ACCOUNT}] rect[data-kind=lead]")
    shot(browser, "05-status-page-after-demo-sync.png")

    # The same page inside Airflow's UI (Browse menu → plugin view, an iframe of the page).
    browser.get(f"{demo.url}/plugin/fbmkto-status")
    frame = wait_for(lambda: by_css(browser, "iframe"), "the plugin view's iframe")[0]
    assert urlsplit(frame.get_attribute("src")).path == "/fbmkto/status"
    browser.switch_to.frame(frame)
    wait_for(lambda: by_css(browser, "[data-testid=accounts]"), "the page inside Airflow's UI")
    browser.switch_to.default_content()
    shot(browser, "06-status-page-in-airflow-ui.png")


def test_replay_failed_queues_a_run_that_sends_the_skipped_rows(demo: DemoStack, browser: Any):
    # The fix: the people appear in Marketo (a form fill, a CRM sync).
    emails = sorted({c.email.strip().lower() for c in demo.fb.model.clients.values() if c.email.strip()})
    people = [{"email": e} for e in emails]
    demo.mkto.model.sync_leads({"action": "createOrUpdate", "lookupField": "email", "input": people})
    before = {r["run_id"] for r in demo.stack.runs(DAG_ID)}
    browser.get(f"{demo.url}/fbmkto/status")
    replay = wait_for(lambda: by_css(browser, f"[data-testid=replay-{ACCOUNT}]"), "the replay button")[0]
    done(replay.click, "the replay button")
    notice = wait_for(lambda: by_css(browser, "[data-testid=notice]"), "the replay notice")[0].text
    shot(browser, "07-replay-queued.png")
    assert notice.startswith("Replay queued: run manual__")

    runs = {r["run_id"]: r for r in demo.stack.runs(DAG_ID)}  # airflow dags list-runs
    (new,) = set(runs) - before
    assert new in notice
    assert runs[new]["state"] in ("queued", "running", "success")
    token = browser.get_cookie("_token")["value"]
    detail = requests.get(
        f"{demo.url}/api/v2/dags/{DAG_ID}/dagRuns/{new}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).json()
    assert detail["conf"] == {"replay_failed": True}
    assert detail["run_type"] == "manual"

    finished = {r["run_id"]: r["state"] for r in demo.stack.wait_for_runs(DAG_ID, len(before) + 1, timeout=180)}
    assert finished[new] == "success"
    assert len(demo.mkto.activities()) > 0  # Marketo now has the activities it skipped before
    browser.get(f"{demo.url}/fbmkto/status")
    wait_for(lambda: by_css(browser, "[data-testid=no-failures]"), "an empty failures table")
    assert page_numbers(browser) == db_numbers(demo)
    shot(browser, "08-status-page-after-replay.png")
