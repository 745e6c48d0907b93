"""Shared helpers of the deploy tests: the repository's files, the parsed compose file, the deploy scripts."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
SCHEMA_FILE = Path(__file__).with_name("compose-spec.json")

#: Services that run Airflow components from the common anchor.
AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
)


@cache
def compose() -> dict[str, Any]:
    """docker-compose.yaml as Compose sees it before interpolation (YAML anchors and ``<<`` merges resolved)."""
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def service(name: str) -> dict[str, Any]:
    services = compose()["services"]
    assert name in services, f"docker-compose.yaml has no service {name!r}"
    svc = services[name]
    assert isinstance(svc, dict)
    return svc


def env(name: str) -> dict[str, Any]:
    """A service's ``environment`` as a mapping (the file uses the mapping form throughout)."""
    value = service(name).get("environment", {})
    assert isinstance(value, dict), f"{name}: environment should be a mapping"
    return value


def deploy_module(name: str) -> ModuleType:
    """Import ``deploy/<name>.py`` (the directory is not a package) once per test session."""
    key = f"fbmkto_deploy_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, ROOT / "deploy" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module
