"""Which Marketo company a FreshBooks client belongs to.

Order (first hit wins):

1. the account's explicit rules, in file order. A rule names exactly one of

   * ``client_id`` — the FreshBooks client id;
   * ``email`` — the client's e-mail, compared case-insensitively;
   * ``domain`` — the client's e-mail domain, compared case-insensitively and **exactly**: a rule for
     ``bigco.io`` does not match ``eu.bigco.io`` (add a rule per domain; that keeps rules predictable and
     stops one broad rule from swallowing unrelated subdomains);

   and the company is identified by the rule's company name (:func:`company_key_for_rule`);
2. else the client's e-mail domain, unless it is a free-mail domain (:data:`FREE_MAIL_DOMAINS` plus the
   account's extra ones); the company key is the domain itself.

Rule keys never contain a dot and domain keys always do, so the two can never collide.
``externalCompanyId`` is ``fbmkto:<key>`` (:func:`external_company_id`).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from airflow_provider_fbmkto.sync.records import Client

__all__ = [
    "FREE_MAIL_DOMAINS",
    "CompanyMatch",
    "Conflict",
    "Rule",
    "company_key_for_rule",
    "email_domain",
    "external_company_id",
    "find_conflicts",
    "match_client",
    "match_clients",
]

FREE_MAIL_DOMAINS: frozenset[str] = frozenset(
    {
        # Google, Microsoft, Yahoo, Apple, AOL
        "gmail.com", "googlemail.com",
        "outlook.com", "outlook.de", "outlook.fr", "hotmail.com", "hotmail.co.uk", "hotmail.fr", "hotmail.de",
        "hotmail.it", "hotmail.es", "live.com", "live.co.uk", "live.fr", "live.ca", "msn.com", "passport.com",
        "yahoo.com", "yahoo.co.uk", "yahoo.ca", "yahoo.fr", "yahoo.de", "yahoo.es", "yahoo.it", "yahoo.co.jp",
        "yahoo.com.au", "yahoo.co.in", "ymail.com", "rocketmail.com",
        "icloud.com", "me.com", "mac.com",
        "aol.com", "aim.com", "verizon.net",
        # privacy and independent providers
        "proton.me", "protonmail.com", "protonmail.ch", "pm.me", "tutanota.com", "tuta.io", "fastmail.com",
        "fastmail.fm", "hey.com", "zoho.com", "zohomail.com", "mail.com", "email.com", "gmx.com", "gmx.net",
        "gmx.de", "gmx.at", "gmx.ch", "web.de", "t-online.de", "freenet.de", "posteo.de", "mailbox.org",
        "yandex.ru", "yandex.com", "ya.ru", "mail.ru", "inbox.ru", "list.ru", "bk.ru", "rambler.ru",
        "qq.com", "163.com", "126.com", "sina.com", "naver.com", "daum.net", "hanmail.net",
        "orange.fr", "wanadoo.fr", "free.fr", "laposte.net", "sfr.fr", "libero.it", "virgilio.it", "tiscali.it",
        "btinternet.com", "sky.com", "virginmedia.com", "ntlworld.com", "talktalk.net",
        "comcast.net", "att.net", "sbcglobal.net", "bellsouth.net", "cox.net", "charter.net", "earthlink.net",
        "shaw.ca", "rogers.com", "sympatico.ca", "bigpond.com", "optusnet.com.au", "xtra.co.nz",
        "rediffmail.com", "seznam.cz", "wp.pl", "o2.pl", "interia.pl", "onet.pl", "uol.com.br", "bol.com.br",
        "terra.com.br", "hushmail.com", "gmx.us", "duck.com", "mailfence.com",
    }
)  # fmt: skip


_NON_ALNUM = re.compile(r"[\W_]+")


def company_key_for_rule(company_name: str) -> str:
    """The company key of a rule's company name (pinned): ``"BigCo Holdings"`` → ``"bigco-holdings"``.

    The name is NFC-normalised and lower-cased; each run of non-alphanumerics (Unicode-aware, so ``ü`` is a
    letter; ``_`` counts as a separator) becomes ``-``, and leading/trailing dashes are dropped. The
    function is idempotent. It can return ``""`` for a name without letters or digits; the config loader
    refuses such names.
    """
    lowered = unicodedata.normalize("NFC", company_name).lower()
    return _NON_ALNUM.sub("-", lowered).strip("-")


def external_company_id(key: str) -> str:
    """Marketo ``externalCompanyId`` of a company key: ``fbmkto:<key>``."""
    return f"fbmkto:{key}"


def email_domain(email: str) -> str | None:
    """The lower-cased domain after the last ``@``, without a trailing dot; ``None`` if there is none."""
    local, at, domain = email.strip().rpartition("@")
    domain = domain.strip().rstrip(".").lower()
    if not at or not local or not domain:
        return None
    return domain


@dataclass(frozen=True, slots=True)
class Rule:
    """One explicit matching rule: exactly one of ``client_id``, ``email``, ``domain``, and a company name.

    ``email`` and ``domain`` are stored lower-cased. ``shared`` allows another account to write the same
    company (see :mod:`airflow_provider_fbmkto.sync.config`).

    :raises ValueError: if not exactly one selector is given, or the company name has no key.
    """

    company: str
    client_id: int | None = None
    email: str | None = None
    domain: str | None = None
    shared: bool = False

    def __post_init__(self) -> None:
        given = [n for n in ("client_id", "email", "domain") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"a rule needs exactly one of client_id, email, domain (got {given or 'none'})")
        if not company_key_for_rule(self.company):
            raise ValueError(f"company name {self.company!r} has no letters or digits")
        if self.email is not None:
            object.__setattr__(self, "email", self.email.strip().lower())
        if self.domain is not None:
            object.__setattr__(self, "domain", self.domain.strip().rstrip(".").lower())

    @property
    def key(self) -> str:
        return company_key_for_rule(self.company)

    @property
    def selector(self) -> str:
        """``"client_id"``, ``"email"`` or ``"domain"``."""
        if self.client_id is not None:
            return "client_id"
        return "email" if self.email is not None else "domain"

    def matches(self, client: Client) -> bool:
        if self.client_id is not None:
            return client.id == self.client_id
        if self.email is not None:
            return client.email.strip().lower() == self.email
        return email_domain(client.email) == self.domain


@dataclass(frozen=True, slots=True)
class CompanyMatch:
    """The company a client belongs to.

    :param key: company key (rule key or domain).
    :param name: display name (Marketo ``company``).
    :param domain: website domain (Marketo ``website``): the matched domain for domain rules and domain
        matches, ``None`` for client-id and e-mail rules.
    :param rule_index: index of the rule that matched (0-based), ``None`` for a domain match.
    """

    key: str
    name: str
    domain: str | None
    rule_index: int | None

    @property
    def external_id(self) -> str:
        return external_company_id(self.key)

    @property
    def by_rule(self) -> bool:
        return self.rule_index is not None


def match_client(client: Client, rules: Sequence[Rule], free_mail: Iterable[str]) -> CompanyMatch | None:
    """Match one client (rules in order, then its e-mail domain unless free-mail); ``None`` if nothing matches.

    A domain match is named after the client's own organization (else the domain); use
    :func:`match_clients` to name it after the most common organization among all the domain's clients.

    :param free_mail: domains that never match by domain (lower-case), e.g. ``FREE_MAIL_DOMAINS``.
    """
    for index, rule in enumerate(rules):
        if rule.matches(client):
            return CompanyMatch(rule.key, rule.company.strip(), rule.domain, index)
    domain = email_domain(client.email)
    free = free_mail if isinstance(free_mail, set | frozenset) else frozenset(free_mail)
    if domain is None or domain in free:
        return None
    return CompanyMatch(domain, client.organization.strip() or domain, domain, None)


def match_clients(
    clients: Iterable[Client], rules: Sequence[Rule], free_mail: Iterable[str]
) -> dict[int, CompanyMatch]:
    """Match many clients; returns client id → match for those that match.

    Deleted clients are left out (they no longer belong to a company). A domain match's display name is
    the most common non-empty organization among the clients matched to that domain here (ties: the
    alphabetically first), else the domain — so pass *all* of the account's live clients for stable names.
    """
    free = frozenset(d.lower() for d in free_mail)
    raw: dict[int, CompanyMatch] = {}
    orgs: dict[str, Counter[str]] = defaultdict(Counter)
    for client in clients:
        if client.is_deleted:
            continue
        m = match_client(client, rules, free)
        if m is None:
            continue
        raw[client.id] = m
        if not m.by_rule and client.organization.strip():
            orgs[m.key][client.organization.strip()] += 1
    names = {key: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for key, c in orgs.items()}
    return {
        cid: m if m.by_rule else CompanyMatch(m.key, names.get(m.key, m.key), m.domain, None) for cid, m in raw.items()
    }


@dataclass(frozen=True, slots=True)
class Conflict:
    """A company key that several accounts would write."""

    key: str
    accounts: tuple[str, ...]

    @property
    def message(self) -> str:
        names = ", ".join(repr(a) for a in self.accounts)
        return (
            f"accounts {names} would all write Marketo company {external_company_id(self.key)!r} and "
            f"overwrite each other's billing fields; give the company a rule with 'shared: true' in each of "
            f"these accounts if that is intended, or a distinct rule in one of them"
        )


def find_conflicts(
    matches_by_account: Mapping[str, Iterable[CompanyMatch | str]], shared_keys: Iterable[str] = ()
) -> list[Conflict]:
    """Company keys written by more than one account, except ``shared_keys`` (sorted by key).

    Use at run time for domain matches, which config validation cannot foresee: pass this account's
    matches and the company keys other accounts have written (e.g. from the ledger's ``company:`` keys).

    :param matches_by_account: account name → its matches (or bare company keys).
    :param shared_keys: keys allowed in several accounts (``SyncConfig.shared_company_keys``).
    """
    shared = frozenset(shared_keys)
    owners: dict[str, set[str]] = defaultdict(set)
    for account, matches in matches_by_account.items():
        for m in matches:
            owners[m if isinstance(m, str) else m.key].add(account)
    return [
        Conflict(key, tuple(sorted(accts)))
        for key, accts in sorted(owners.items())
        if len(accts) > 1 and key not in shared
    ]
