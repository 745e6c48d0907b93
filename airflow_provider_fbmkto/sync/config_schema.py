"""The account config schema: frozen dataclasses, the error type and the file's location.

Field-by-field documentation is on the dataclasses; the file format, defaults merging and cross-account
checks are described in :mod:`airflow_provider_fbmkto.sync.config`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from airflow_provider_fbmkto.exceptions import ConfigError
from airflow_provider_fbmkto.sync.marketo_fit import MarketoFit
from airflow_provider_fbmkto.sync.matching import FREE_MAIL_DOMAINS, Rule
from airflow_provider_fbmkto.sync.plan import ActivityTypeNames, Segments

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_BULK_THRESHOLD",
    "DEFAULT_CONFIG_NAME",
    "AccountConfig",
    "AccountConfigError",
    "ActivityTypesConfig",
    "ConfigProblems",
    "MatchingConfig",
    "ReconcileConfig",
    "Rule",
    "SegmentsConfig",
    "SyncConfig",
    "config_path",
    "locate_config",
]

CONFIG_ENV = "FBMKTO_CONFIG"
DEFAULT_CONFIG_NAME = "fbmkto_accounts.yaml"
DEFAULT_BULK_THRESHOLD = 3000

SegmentsConfig = Segments
"""``segments:`` — ``paid_list_id``, ``overdue_list_id``, ``on_overdue_campaign_id``, ``on_paid_campaign_id``."""

ActivityTypesConfig = ActivityTypeNames
"""``activity_types:`` — apiNames under ``invoice_sent``, ``payment_received``, ``invoice_overdue``."""


class AccountConfigError(ConfigError):
    """One problem in the account config file.

    :param source: the file (as given to the loader).
    :param account: the account's name (or ``accounts[i]`` when it has none); ``None`` for file-level problems.
    :param field: dotted path of the offending field, e.g. ``matching.rules[1]``; ``None`` for the whole account.
    :param problem: what is wrong and how to fix it.
    """

    def __init__(self, source: str, account: str | None, field: str | None, problem: str) -> None:
        self.source = source
        self.account = account
        self.field = field
        self.problem = problem
        where = [source]
        if account is not None:
            where.append(f"account {account!r}" if not account.startswith("accounts[") else account)
        if field is not None:
            where.append(field)
        super().__init__(": ".join([*where, problem]))

    def __reduce__(self) -> tuple[type[AccountConfigError], tuple[str, str | None, str | None, str]]:
        return (type(self), (self.source, self.account, self.field, self.problem))


class ConfigProblems(ConfigError):
    """Several :class:`AccountConfigError` at once (raised by the strict loaders); ``errors`` lists them."""

    def __init__(self, source: str, errors: Sequence[AccountConfigError]) -> None:
        self.source = source
        self.errors = tuple(errors)
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"{len(self.errors)} problems in {source}:\n{lines}")

    def __reduce__(self) -> tuple[type[ConfigProblems], tuple[str, tuple[AccountConfigError, ...]]]:
        return (type(self), (self.source, self.errors))


@dataclass(frozen=True, slots=True)
class MatchingConfig:
    """``matching:`` — explicit rules (first match wins) and extra free-mail domains.

    :param rules: tried in order before the e-mail domain.
    :param free_mail_domains: domains added to :data:`~airflow_provider_fbmkto.sync.matching.FREE_MAIL_DOMAINS`.
    """

    rules: tuple[Rule, ...] = ()
    free_mail_domains: frozenset[str] = frozenset()

    @property
    def free_mail(self) -> frozenset[str]:
        """Every domain that never matches by domain: the built-in list plus the extra ones."""
        return FREE_MAIL_DOMAINS | self.free_mail_domains


@dataclass(frozen=True, slots=True)
class ReconcileConfig:
    """``reconcile:`` — compare Marketo with FreshBooks.

    :param fix_marketo: write FreshBooks' names back to Marketo leads that differ (FreshBooks is the truth).
    :param bulk_threshold: above this many leads to read, use a bulk lead export instead of reading leads
        by e-mail (300 a call).
    """

    fix_marketo: bool = False
    bulk_threshold: int = DEFAULT_BULK_THRESHOLD


@dataclass(frozen=True, slots=True)
class NotifierSpec:
    """One Airflow notifier: its class and keyword arguments (e.g. the Slack or SMTP provider's notifier).

    :param classpath: dotted path of the notifier class (a ``BaseNotifier``), e.g.
        ``airflow.providers.slack.notifications.slack.SlackNotifier``.
    :param kwargs: keyword arguments of the class (connection ids, channels, text; no secrets: use connections).
    """

    classpath: str
    kwargs: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """``alerts:`` — when a run that completed still fails, so Airflow's failure handling tells someone.

    :param max_skipped: rows Marketo skipped in a run above which its ``report`` task fails (after writing the
        report). Rows waiting for their person in an update-only account do not count.
    :param max_failed: rows left failed by a run above which its ``report`` task fails.
    :param notify: Airflow notifiers called once when a run of the account fails (they are the failure callback of
        its ``report`` task, which runs after every run and fails whenever the run failed or broke these limits).
    """

    max_skipped: int = 50
    max_failed: int = 0
    notify: tuple[NotifierSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """One FreshBooks account synced into Marketo (one DAG, ``fbmkto_sync__<name>``).

    :param name: ``[a-z0-9_]+``; part of the DAG id and of every ledger key.
    :param freshbooks_conn_id: Airflow connection of type ``freshbooks``.
    :param marketo_conn_id: Airflow connection of type ``marketo``.
    :param schedule: an ``@``-preset or five-field cron; interpreted in ``timezone``.
    :param start_date: first day of the first data interval.
    :param catchup: let the scheduler create runs for past intervals.
    :param timezone: IANA zone of the schedule and of FreshBooks dates (``America/New_York``).
    :param matching: company matching rules.
    :param segments: static lists and campaigns.
    :param activity_types: apiNames of the custom activity types.
    :param staging_url: fsspec URL for staged records; ``None`` = ``$AIRFLOW_HOME/fbmkto/staging``.
    :param webhooks: also consume FreshBooks webhook events.
    :param webhooks_retention_days: days a consumed webhook event, or one marked failed, stays in the state DB;
        then the account's next run deletes it.
    :param reconcile: reconciliation options.
    :param marketo: how the account fits the customer's Marketo: field names, lead policy, partition, companies.
    :param alerts: thresholds above which a completed run fails, and who Airflow notifies.
    :param pool: Airflow pool for the tasks that call Marketo (e.g. one pool per Marketo instance).
    :param retries: task retries.
    :param retry_skipped: how many later runs put a skipped row back to pending by themselves when its cause may
        go away without the row changing (no lead in Marketo yet; an activity type not approved yet; Marketo
        ``1004``, ``1006``, ``1008``, ``1013``); then it waits for a replay. ``0``: never. A replay starts the count
        again.
    :param daily_budget_share: fraction (above 0, at most 1) of the Marketo instance's usable daily budget
        (``daily_budget - budget_reserve`` less other integrations' calls today) this account's loads may spend;
        when it is spent the load stops cleanly, its rows wait for the next run after midnight America/Chicago,
        and the report says so. Counted in the state DB, shared by every worker. Default: no cap of its own.
    :param max_active_runs: concurrent runs of this account's DAG.
    """

    name: str
    freshbooks_conn_id: str
    marketo_conn_id: str
    schedule: str
    start_date: date
    catchup: bool = False
    timezone: str = "America/New_York"
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    segments: Segments = field(default_factory=Segments)
    activity_types: ActivityTypeNames = field(default_factory=ActivityTypeNames)
    staging_url: str | None = None
    webhooks: bool = False
    webhooks_retention_days: int = 30
    reconcile: ReconcileConfig = field(default_factory=ReconcileConfig)
    marketo: MarketoFit = field(default_factory=MarketoFit)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    pool: str | None = None
    retries: int = 3
    max_active_runs: int = 1
    retry_skipped: int = 5
    daily_budget_share: float | None = None

    @property
    def dag_id(self) -> str:
        return f"fbmkto_sync__{self.name}"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """The whole file: its accounts, in file order."""

    source: str
    accounts: tuple[AccountConfig, ...]

    def account(self, name: str) -> AccountConfig:
        """The account called ``name``.

        :raises ConfigError: naming the accounts there are.
        """
        for acct in self.accounts:
            if acct.name == name:
                return acct
        known = ", ".join(a.name for a in self.accounts) or "none"
        raise ConfigError(f"{self.source}: no account {name!r} (accounts: {known})")

    @property
    def shared_company_keys(self) -> frozenset[str]:
        """Company keys that accounts may write together: named by ``shared: true`` rules."""
        return frozenset(r.key for a in self.accounts for r in a.matching.rules if r.shared)


def locate_config(
    dags_folder: str | Path,
    environ: Mapping[str, str],
    *,
    explicit: str | None = None,
    fallback_folder: str | Path | None = None,
) -> tuple[Path, bool]:
    """``(path, named)``: where the accounts config is, and whether someone named it. The one place that knows.

    ``explicit`` (``--config``) if given, else ``environ[FBMKTO_CONFIG]`` if set, else
    ``<dags_folder>/fbmkto_accounts.yaml``; when that file is absent and ``fallback_folder`` is given,
    ``<fallback_folder>/fbmkto_accounts.yaml``. ``named`` is true for the first two.

    :param dags_folder: the folder of the DAG file (or Airflow's ``[core] dags_folder``).
    :param environ: the environment (``os.environ``), passed in to keep this pure.
    :param explicit: a path the user gave on the command line.
    :param fallback_folder: where to look when ``dags_folder`` has no config (the CLI: the checkout's ``dags``).
    """
    override = explicit or environ.get(CONFIG_ENV, "").strip()
    if override:
        return Path(override), True
    path = Path(dags_folder) / DEFAULT_CONFIG_NAME
    if fallback_folder is not None and not path.exists():
        path = Path(fallback_folder) / DEFAULT_CONFIG_NAME
    return path, False


def config_path(dags_folder: str | Path, environ: Mapping[str, str]) -> Path:
    """Where the config file is: ``environ[FBMKTO_CONFIG]`` if set, else ``<dags_folder>/fbmkto_accounts.yaml``.

    :param dags_folder: the directory of the DAG file.
    :param environ: the environment (``os.environ``), passed in to keep this pure.
    """
    return locate_config(dags_folder, environ)[0]
