"""Reasons the load gives rows it could not send, and which of them the next runs try again by themselves."""

from __future__ import annotations

#: Prefix of the reason of rows waiting for their person in Marketo (update-only accounts, or a lead deleted in
#: Marketo): such rows are skipped, not failed, and the next run's load puts them back to pending.
NO_LEAD = "no lead in Marketo"


def no_lead(email: str, why: str) -> str:
    """The reason of a row that waits for the person ``email`` to exist in Marketo."""
    return f"{NO_LEAD} for {email}: {why}"


#: Prefix of the reason of activities whose type Marketo does not have approved (yet).
NO_TYPE = "Marketo has no approved activity type"


def no_activity_type(api_name: str, marketo_conn_id: str) -> str:
    """The reason of an activity whose type ``api_name`` is missing or still a draft in Marketo."""
    return f"{NO_TYPE} {api_name!r}; run `fbmkto setup-marketo --conn-id {marketo_conn_id}`, then replay"


def heals_by_itself(reason: str) -> bool:
    """Whether a skipped row's cause may go away without the row changing, so a later run tries it again (bounded:
    the account's ``retry_skipped``): its person may appear in Marketo, its activity type may be approved, a
    field may be created (Marketo's :data:`~airflow_provider_fbmkto.hooks.marketo_errors.HEALING_SKIP_CODES`)."""
    from airflow_provider_fbmkto.hooks.marketo_errors import HEALING_SKIP_CODES

    if reason.startswith((NO_LEAD, NO_TYPE)):
        return True
    return any(part.strip().split(" ", 1)[0] in HEALING_SKIP_CODES for part in reason.split(";"))


#: Prefix of the reason of writes held because another account owns their Marketo person or company
#: (``sync/ownership.py``). A hold is a decision, not a passing cause: held rows are not retried by themselves;
#: after sharing the key in both accounts (or releasing it) a replay sends them.
OWNED_BY = "owned by account"


def owned_by(owner: str, what: str, fix: str) -> str:
    """The reason of a write held because account ``owner`` owns ``what`` (e.g. ``lead ann@bigco.io``)."""
    first = f"{what} was first written to Marketo by account {owner!r}, so this account's write is held"
    return f"{OWNED_BY} {owner}: {first}; {fix}"
