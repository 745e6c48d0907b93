"""Account configuration: load and check ``fbmkto_accounts.yaml``.

The file (``dags/fbmkto_accounts.yaml`` beside the DAG file; ``FBMKTO_CONFIG`` overrides the path, see
:func:`~airflow_provider_fbmkto.sync.config_schema.locate_config`) holds ``accounts:`` — a list of accounts —
and optionally ``defaults:``, a mapping merged into every account (nested mappings are merged key by key and
the account's own values win; lists are replaced, not joined)::

    defaults:
      marketo_conn_id: marketo_default
      reconcile: {fix_marketo: false}
    accounts:
      - name: acme
        freshbooks_conn_id: freshbooks_acme
        schedule: "@daily"
        start_date: "2025-01-01"
        matching:
          rules:                       # first match wins; then the e-mail domain
            - {domain: bigco.io, company: BigCo Holdings}
            - {email: cfo@smallco.com, company: SmallCo, shared: true}

The types (:class:`~airflow_provider_fbmkto.sync.config_schema.SyncConfig`, ``AccountConfig``, the errors) are in
:mod:`~airflow_provider_fbmkto.sync.config_schema`; this module only loads. Every problem is an
:class:`AccountConfigError` naming the file, the account, the field and the fix. Unknown
keys are errors (with a did-you-mean), and so are duplicate keys in one YAML mapping. File-level problems
(missing file, YAML syntax, no ``accounts`` list, a bad ``defaults`` key) fail the whole file; a problem
inside one account only fails that account (:func:`load_config_collecting`).

**Cross-account checks.** Account names must be unique (every occurrence of a duplicate is refused), and
two accounts may not share a ``freshbooks_conn_id`` (one FreshBooks account synced twice would send every
activity twice). Two accounts whose explicit rules name the same company key would overwrite each other's
billing fields on one Marketo company: that is refused unless *every* rule naming that company in *both*
accounts says ``shared: true``. The later account in the file gets the error; the earlier one loads.
Conflicts through plain e-mail domains can only be seen at run time: see
:func:`~airflow_provider_fbmkto.sync.matching.find_conflicts` with :attr:`SyncConfig.shared_company_keys`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from airflow_provider_fbmkto.sync.config_parse import parse_document, read_yaml
from airflow_provider_fbmkto.sync.config_schema import (
    AccountConfig,
    AccountConfigError,
    ConfigProblems,
    SyncConfig,
)

__all__ = [
    "load_config",
    "load_config_collecting",
    "parse_config",
    "parse_config_collecting",
]


def parse_config_collecting(data: object, *, source: str) -> tuple[list[AccountConfig], list[AccountConfigError]]:
    """Parse loaded YAML data; good accounts load while bad ones report.

    :param data: what ``yaml.safe_load`` returned.
    :param source: the file name to put in messages.
    :returns: the valid accounts in file order, and one error per problem of the invalid ones.
    :raises AccountConfigError: for file-level problems.
    """
    return parse_document(data, source=source)


def parse_config(data: Mapping[str, object], *, source: str) -> SyncConfig:
    """Parse loaded YAML data strictly.

    :raises AccountConfigError: the only problem, if there is one.
    :raises ConfigProblems: listing every problem, if there are several.
    """
    accounts, errors = parse_document(data, source=source)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ConfigProblems(source, errors)
    return SyncConfig(source, tuple(accounts))


def load_config_collecting(path: str | Path) -> tuple[list[AccountConfig], list[AccountConfigError]]:
    """Load the file; good accounts load while bad ones report (what the DAG file uses).

    :raises AccountConfigError: for file-level problems, which fail every account.
    """
    data = read_yaml(path)
    return parse_document(data, source=str(path))


def load_config(path: str | Path) -> SyncConfig:
    """Load the file strictly: any problem raises (see :func:`parse_config`)."""
    data = read_yaml(path)
    accounts, errors = parse_document(data, source=str(path))
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ConfigProblems(str(path), errors)
    return SyncConfig(str(path), tuple(accounts))
