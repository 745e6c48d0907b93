"""The package as Airflow sees it: provider discovery, connection forms, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_fbmkto import __version__, get_provider_info

REPO = Path(__file__).resolve().parents[2]


def _airflow(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )


def test_provider_info_validates_against_airflows_schema():
    import jsonschema
    from airflow.providers_manager import _create_provider_info_schema_validator

    info = get_provider_info()
    _create_provider_info_schema_validator().validate(info)
    assert info["package-name"] == "airflow-provider-fbmkto"
    assert info["versions"][0] == __version__
    jsonschema.Draft7Validator.check_schema({"type": "object"})


@pytest.mark.parametrize("conn_type", ["freshbooks", "marketo"])
def test_connection_forms_relabel_and_hide_standard_fields(conn_type):
    (ct,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == conn_type]
    behaviour = ct["ui-field-behaviour"]
    assert {"schema", "port"} <= set(behaviour["hidden-fields"])
    assert set(behaviour["relabeling"]) == {"host", "login", "password"}
    # Every custom field has a label and a JSON schema; secrets are password-formatted so the UI masks them.
    for name, field in ct["conn-fields"].items():
        assert field["label"], name
        assert field["schema"]["type"], name
    if conn_type == "freshbooks":
        assert ct["conn-fields"]["webhook_verifier"]["schema"]["format"] == "password"


def test_airflow_lists_the_provider_and_its_connection_forms(tmp_path):
    listed = _airflow("providers", "list", "-o", "json", home=tmp_path)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert any(p["package_name"] == "airflow-provider-fbmkto" for p in json.loads(listed.stdout))

    got = _airflow("providers", "get", "airflow-provider-fbmkto", "--full", "-o", "json", home=tmp_path)
    assert got.returncode == 0, got.stderr[-2000:]
    assert "airflow-provider-fbmkto" in got.stdout

    probe = (
        "from airflow.providers_manager import ProvidersManager as P; import json; p=P(); "
        "print(json.dumps({'hooks': {k: v.package_name for k, v in p.hooks.items() if v}, "
        "'widgets': sorted(k for k in p.connection_form_widgets if 'freshbooks' in k or 'marketo' in k), "
        "'behaviours': {k: v for k, v in p.field_behaviours.items() if k in ('freshbooks', 'marketo')}}))"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True, timeout=180
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["hooks"]["freshbooks"] == "airflow-provider-fbmkto"
    assert seen["hooks"]["marketo"] == "airflow-provider-fbmkto"
    assert "extra__freshbooks__redirect_uri" in seen["widgets"]
    assert "extra__marketo__daily_budget" in seen["widgets"]
    assert seen["behaviours"]["freshbooks"]["relabeling"]["login"] == "OAuth client ID"


def test_fbmkto_version_and_airflow_subcommand(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "airflow_provider_fbmkto.cli", "--version"], capture_output=True, text=True, check=False
    )
    assert out.stdout.strip() == f"fbmkto {__version__}"
    via_airflow = _airflow("fbmkto", "emulate", "--help", home=tmp_path)
    assert via_airflow.returncode == 0, via_airflow.stderr[-2000:]
    assert "freshbooks" in via_airflow.stdout
