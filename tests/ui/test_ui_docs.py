"""The docs stay true to the code: generated config reference, troubleshooting keyed by real messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from airflow_provider_fbmkto.cli import docs as docs_cli
from airflow_provider_fbmkto.cli import main
from airflow_provider_fbmkto.exceptions import ConfigError
from airflow_provider_fbmkto.sync import config_fields
from airflow_provider_fbmkto.sync.config import parse_config

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PACKAGE = REPO / "airflow_provider_fbmkto"


def schema_paths(schema: dict[str, object], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, sub in schema.items():
        path = f"{prefix}.{key}" if prefix else key
        out.append(path)
        if isinstance(sub, dict):
            out += schema_paths(sub, path)
        elif isinstance(sub, list):
            out += schema_paths(sub[0], f"{path}[]")
    return out


def test_config_reference_documents_every_key_the_loader_accepts():
    text = docs_cli.render_reference()
    rows = dict(re.findall(r"^\| `([^`]+)` \| [^|]+ \| ([^|]+) \|", text, flags=re.M))
    assert sorted(rows) == sorted(schema_paths(config_fields.SCHEMA))
    assert rows["name"].strip() == "**required**"
    assert rows["retries"].strip() == "`3`"
    assert rows["activity_types.invoice_sent"].strip() == "`fbInvoiceSent`"
    assert rows["timezone"].strip() == "`America/New_York`"


def test_committed_config_reference_is_up_to_date(capsys: pytest.CaptureFixture[str]):
    assert main(["docs", "config-reference", "--output", str(DOCS / "config-reference.md"), "--check"]) == 0


def test_check_fails_on_a_stale_file_and_names_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    stale = tmp_path / "config-reference.md"
    stale.write_text("old\n")
    assert main(["docs", "config-reference", "--output", str(stale), "--check"]) == 1
    assert f"regenerate it: fbmkto docs config-reference --output {stale}" in capsys.readouterr().err
    assert main(["docs", "config-reference", "--output", str(stale)]) == 0
    assert main(["docs", "config-reference", "--output", str(stale), "--check"]) == 0


def test_a_schema_key_without_a_field_or_description_is_an_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(config_fields.SCHEMA, "bogus_key", None)
    with pytest.raises(ConfigError, match="'bogus_key' is not a field of AccountConfig"):
        docs_cli.reference_rows()


def test_the_reference_example_is_a_valid_config():
    config = parse_config(yaml.safe_load(docs_cli.EXAMPLE), source="example")
    (acct,) = config.accounts
    assert acct.dag_id == "fbmkto_sync__acme"
    assert [r.key for r in acct.matching.rules] == ["bigco-holdings", "smallco", "forty-two-ltd"]


def test_troubleshooting_messages_are_ones_the_code_raises():
    source = "\n".join(p.read_text() for p in PACKAGE.rglob("*.py") if "testing" not in p.parts)
    table = (DOCS / "troubleshooting.md").read_text().split("## Messages of the provider")[1].split("\n## ")[0]
    keys = re.findall(r"^\| `([^`]+)` \|", table, flags=re.M)
    assert len(keys) >= 40
    missing = [k for k in keys if k not in source]
    assert missing == []


@pytest.mark.parametrize(
    "page",
    [
        "getting-started.md",
        "connect-freshbooks.md",
        "connect-marketo.md",
        "config-reference.md",
        "operations.md",
        "troubleshooting.md",
    ],
)
def test_docs_link_only_to_pages_that_exist(page: str):
    text = (DOCS / page).read_text()
    for target in re.findall(r"\]\(([^)#:]+\.md)\)", text):
        assert (DOCS / target).is_file(), f"{page} links to missing {target}"
