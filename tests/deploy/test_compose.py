"""docker-compose.yaml, Dockerfile and .env.example: valid Compose, and the facts a user relies on.

The Compose Specification schema is vendored as ``compose-spec.json``: ``schema/compose-spec.json`` of
github.com/compose-spec/compose-spec (Apache License 2.0), last changed there in commit a08f8d5 (2025-10-28).
No installable package ships it and the tests run without network. ``docker compose config -q`` runs too
where the Docker CLI has the compose plugin and an engine answers.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
from cryptography.fernet import Fernet
from deploy_support import AIRFLOW_SERVICES, COMPOSE_FILE, ROOT, SCHEMA_FILE, compose, env, service

REQUIRED_VAR = re.compile(r"^\$\{(?P<name>[A-Z_][A-Z0-9_]*):\?[^}]+\}$")


def _validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _errors(document: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator().iter_errors(document)]


# --- the Compose Specification --------------------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    assert _errors(compose()) == []


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d["services"]["postgres"].update(healthcheck={"test": 5}), "services/postgres/healthcheck/test"),
        (lambda d: d["services"]["redis"].update(restart_policy="always"), "services/redis"),
        (lambda d: d["services"]["airflow-worker"].update(depends_on={"redis": {"condition": "up"}}), "services"),
    ],
    ids=["healthcheck-test-not-a-string-or-list", "unknown-service-key", "bad-depends-on-condition"],
)
def test_the_schema_check_rejects_broken_variants(mutate: Any, where: str) -> None:
    """The validation above is not vacuous: the same schema rejects small breakages of the same file."""
    broken = copy.deepcopy(compose())
    mutate(broken)
    errors = _errors(broken)
    assert errors, "the schema accepted a broken compose file"
    assert any(e.startswith(where) for e in errors), errors


def _compose_cli_reason() -> str | None:
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    if subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode != 0:
        return "the docker CLI has no compose plugin (docker compose version failed)"
    if subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=30).returncode != 0:
        return "no Docker engine answers (docker info failed); only the CLI is present"
    return None


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    reason = _compose_cli_reason()
    if reason:
        pytest.skip(reason)
    variables = {"FERNET_KEY": Fernet.generate_key().decode(), "JWT_SECRET": "x" * 40, "AIRFLOW_UID": "50000"}
    for profile in ("", "emulators"):
        args = ["docker", "compose", "-f", str(COMPOSE_FILE), "--project-directory", str(ROOT)]
        args += ["--profile", profile] if profile else []
        result = subprocess.run(
            [*args, "config", "-q"], capture_output=True, text=True, check=False, env={**_path_env(), **variables}
        )
        assert result.returncode == 0, result.stderr


def _path_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG")}


# --- one image, one environment -------------------------------------------------------------------------------


def test_every_airflow_service_uses_the_common_image_and_environment() -> None:
    common = compose()["x-airflow-common"]
    for name in (*AIRFLOW_SERVICES, "airflow-cli", "demo-setup"):
        svc = service(name)
        assert svc["image"] == common["image"], name
        assert svc["build"] == common["build"], name
        assert svc["user"] == common["user"] or name == "airflow-init", name
        assert set(svc["volumes"]) == set(common["volumes"]), name
        mine = env(name)
        missing = {k: v for k, v in common["environment"].items() if mine.get(k) != v}
        assert missing == {}, f"{name} lacks or changes common settings {sorted(missing)}"
    # the emulators run the same image (the package ships them), without Airflow's settings
    for name in ("fb-emulator", "mkto-emulator"):
        assert service(name)["image"] == common["image"]
        assert "AIRFLOW__CORE__FERNET_KEY" not in env(name)


def test_image_is_built_from_the_dockerfile_of_this_repository() -> None:
    build = compose()["x-airflow-common"]["build"]
    assert (ROOT / build["context"] / build["dockerfile"]).resolve() == (ROOT / "Dockerfile").resolve()


@pytest.mark.parametrize(
    ("setting", "variable"),
    [("AIRFLOW__CORE__FERNET_KEY", "FERNET_KEY"), ("AIRFLOW__API_AUTH__JWT_SECRET", "JWT_SECRET")],
)
def test_secrets_are_required_variables_not_values(setting: str, variable: str) -> None:
    value = compose()["x-airflow-common"]["environment"][setting]
    match = REQUIRED_VAR.match(str(value))
    assert match, f"{setting} must be ${{{variable}:?message}} (required, no default), not {value!r}"
    assert match["name"] == variable


def test_no_fernet_key_or_long_random_secret_is_written_into_the_file() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert not re.search(r"[A-Za-z0-9_-]{43}=", text), "something shaped like a Fernet key is in the file"
    for name, svc in compose()["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"SECRET|FERNET|TOKEN", key) and not str(key).startswith("AIRFLOW_CONN_"):
                assert str(value).startswith("${"), f"{name}: {key} is set to a literal"


def test_env_example_has_no_secret_values_and_its_commands_generate_valid_ones() -> None:
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    assigned = dict(re.findall(r"^([A-Z_][A-Z0-9_]*)=(.*)$", text, flags=re.MULTILINE))
    assert not assigned.get("FERNET_KEY"), "no real Fernet key in .env.example"
    assert not assigned.get("JWT_SECRET"), "no real JWT secret in .env.example"
    commands = re.findall(r"^#\s+python3 -c (.+?) >> \.env$", text, flags=re.MULTILINE)
    produced: dict[str, str] = {}
    for command in commands:
        code = shlex.split(command)[0]
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        key, _, value = out.strip().partition("=")
        produced[key] = value
    assert set(produced) == {"FERNET_KEY", "JWT_SECRET"}
    Fernet(produced["FERNET_KEY"].encode())  # raises if it is not a valid Fernet key
    assert len(produced["JWT_SECRET"]) >= 32


# --- executor, databases, health --------------------------------------------------------------------------------


def test_celery_executor_with_redis_broker_and_the_api_server_as_execution_api() -> None:
    common = compose()["x-airflow-common"]["environment"]
    assert common["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert urlsplit(common["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"
    assert service("airflow-worker")["command"] == "celery worker"
    api = urlsplit(common["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert api.hostname == "airflow-apiserver"
    assert api.path == "/execution/"
    container_ports = {p.split(":")[-1] for p in service("airflow-apiserver")["ports"]}
    assert str(api.port) in container_ports
    assert service("airflow-apiserver")["command"] == "api-server"


def test_postgres_creates_the_state_database_the_fbmkto_state_connection_points_at() -> None:
    mounts = [v.split(":") for v in service("postgres")["volumes"]]
    init = [(src, dst) for src, dst, *_ in mounts if dst.startswith("/docker-entrypoint-initdb.d/")]
    assert len(init) == 1, mounts
    src, dst = init[0]
    assert dst.endswith(".sql")
    sql = (ROOT / src).read_text(encoding="utf-8")
    created = re.findall(r"^\s*CREATE DATABASE\s+(\w+)\s*;", sql, flags=re.MULTILINE | re.IGNORECASE)
    state = urlsplit(compose()["x-airflow-common"]["environment"]["AIRFLOW_CONN_FBMKTO_STATE"])
    assert state.scheme in ("postgres", "postgresql")
    assert state.hostname == "postgres"
    assert created == [state.path.lstrip("/")] == ["fbmkto_state"]
    metadata = urlsplit(compose()["x-airflow-common"]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert metadata.path.lstrip("/") == env("postgres")["POSTGRES_DB"] != "fbmkto_state"


def test_airflow_init_migrates_creates_admin_pool_and_state_db() -> None:
    init = service("airflow-init")
    script = "\n".join(init["command"])
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert init["environment"]["_AIRFLOW_WWW_USER_CREATE"] == "true"
    assert re.search(r'airflow pools set fbmkto_marketo \d+ "', script)
    assert "deploy/init_state_db.py" in script
    for name in AIRFLOW_SERVICES[:-1]:
        assert service(name)["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}


def test_healthchecks_exist_like_the_official_file() -> None:
    for name in ("postgres", "redis", *AIRFLOW_SERVICES[:-1], "fb-emulator", "mkto-emulator"):
        check = service(name).get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert check.get("test"), f"{name}: healthcheck without a test"
    assert "pg_isready" in service("postgres")["healthcheck"]["test"]
    assert "ping" in service("redis")["healthcheck"]["test"]
    assert "http://localhost:8974/health" in service("airflow-scheduler")["healthcheck"]["test"]
    # the api-server's check must be a route of the installed Airflow: /api/v2 + /monitor + /health
    url = next(t for t in service("airflow-apiserver")["healthcheck"]["test"] if t.startswith("http"))
    assert urlsplit(url).path == "/api/v2/monitor/health"
    spec = find_spec("airflow")
    assert spec is not None
    assert spec.submodule_search_locations
    monitor = Path(next(iter(spec.submodule_search_locations))) / "api_fastapi/core_api/routes/public/monitor.py"
    source = monitor.read_text(encoding="utf-8")
    assert 'prefix="/monitor"' in source
    assert '.get("/health"' in source


# --- the emulators profile -------------------------------------------------------------------------------------


def _conn(variable: str) -> dict[str, Any]:
    value = json.loads(compose()["x-airflow-common"]["environment"][variable])
    assert isinstance(value, dict)
    return value


def test_emulators_profile_has_both_emulators_bound_to_all_interfaces() -> None:
    for name, api, conn_var in (
        ("fb-emulator", "freshbooks", "AIRFLOW_CONN_FRESHBOOKS_DEMO"),
        ("mkto-emulator", "marketo", "AIRFLOW_CONN_MARKETO_DEMO"),
    ):
        svc = service(name)
        assert svc["profiles"] == ["emulators"]
        command = svc["command"]
        assert command[0] == api
        assert command[command.index("--host") + 1] == "0.0.0.0"
        port = command[command.index("--port") + 1]
        conn = urlsplit(_conn(conn_var)["host"])
        assert (conn.hostname, str(conn.port)) == (name, port), f"{conn_var} does not point at {name}:{port}"
        assert _conn(conn_var)["conn_type"] == api
        assert any(p.startswith("127.0.0.1:") for p in svc["ports"]), "publish emulators on loopback only"


def test_demo_setup_waits_for_init_and_healthy_emulators() -> None:
    demo = service("demo-setup")
    assert demo["profiles"] == ["emulators"]
    assert demo["restart"] == "no"
    assert demo["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}
    for name in ("fb-emulator", "mkto-emulator"):
        assert demo["depends_on"][name] == {"condition": "service_healthy"}
    fb_port = service("fb-emulator")["command"][service("fb-emulator")["command"].index("--port") + 1]
    assert f"http://fb-emulator:{fb_port}" in demo["command"]


def test_default_services_do_not_depend_on_profiled_ones() -> None:
    """``docker compose up`` without a profile must not need a service it does not start."""
    services = compose()["services"]
    profiled = {n for n, s in services.items() if s.get("profiles")}
    for name, svc in services.items():
        if not svc.get("profiles"):
            assert not set(svc.get("depends_on") or {}) & profiled, name


# --- Dockerfile --------------------------------------------------------------------------------------------------


def test_dockerfile_base_image_is_the_airflow_version_uv_lock_pins() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    match = re.search(r"^ARG AIRFLOW_IMAGE=apache/airflow:(?P<airflow>[\d.]+)-python(?P<py>3\.\d+)$", text, re.M)
    assert match, "Dockerfile should start from ARG AIRFLOW_IMAGE=apache/airflow:<version>-python<x.y>"
    # uv.lock: [[package]] tables, each starting with name = "…" then version = "…" (tomllib is 3.11+ only)
    lock = (ROOT / "uv.lock").read_text(encoding="utf-8")
    pinned = dict(re.findall(r'^\[\[package\]\]\nname = "([^"]+)"\nversion = "([^"]+)"', lock, flags=re.M))
    assert match["airflow"] == pinned["apache-airflow"]
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    minimum = re.search(r'^requires-python = ">=(\d+)\.(\d+)"$', pyproject, flags=re.M)
    assert minimum, 'pyproject.toml should say requires-python = ">=X.Y"'
    assert tuple(map(int, match["py"].split("."))) >= (int(minimum[1]), int(minimum[2]))


def test_dockerfile_installs_the_package_without_changing_the_image_and_ships_the_deploy_scripts() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "pip list --format=freeze > /tmp/image-constraints.txt" in text
    assert re.search(r"pip install [^\n]*--constraint /tmp/image-constraints\.txt", text)
    assert "[postgres]" in text, "psycopg2 for the PostgreSQL state DB"
    assert re.search(r"^COPY --chown=airflow:0 deploy /opt/fbmkto/deploy$", text, re.M)
    for name, svc in compose()["services"].items():
        for part in [*(svc.get("entrypoint") or []), *(svc.get("command") or [])]:
            for script in re.findall(r"/opt/fbmkto/deploy/([\w-]+\.py)", str(part)):
                assert (ROOT / "deploy" / script).is_file(), f"{name} runs deploy/{script}, which does not exist"
