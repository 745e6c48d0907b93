"""A distributed Airflow 3 as native processes: CeleryExecutor, PostgreSQL metadata DB, Redis broker.

The same topology as ``docker-compose.yaml`` (api-server, scheduler, dag-processor, triggerer, Celery workers;
Airflow's metadata and the provider's state in PostgreSQL; Redis as the broker), on the machine's own
PostgreSQL (127.0.0.1:5432, user ``postgres``, trust auth) and Redis (127.0.0.1:6379). Everything it creates is
throwaway: two databases with random names (dropped at the end), one Redis database index (flushed at the
end), one Celery queue of its own, and an AIRFLOW_HOME under the test's tmp dir. Every process it started is
killed at the end, including task processes that left the worker's process group.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from airflow_provider_fbmkto.testing.airflow_stack import AirflowStack, free_port

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
#: Redis database indexes this test may claim (0 is left to whoever else uses the server).
REDIS_DBS = range(5, 16)
_REDIS_CLAIM = "fbmkto-e2e-distributed:claimed"
#: The figures of the run (``config.stash``), printed by this folder's conftest at the end of the session.
FIGURES_KEY = pytest.StashKey[dict[str, Any]]()
#: ... and a copy on disk (CI keeps test-artifacts/; pytest-xdist's controller reads it).
FIGURES_FILE = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e-distributed" / "figures.json"


def pg_url(database: str, driver: str = "postgresql+psycopg2") -> str:
    return f"{driver}://{PG['user']}@{PG['host']}:{PG['port']}/{database}"


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used here, or ``None`` when it can."""
    try:
        import psycopg2
    except ImportError:
        return "psycopg2 is not installed"
    try:
        psycopg2.connect(dbname="postgres", connect_timeout=3, **PG).close()
    except psycopg2.Error as exc:
        return f"PostgreSQL is not reachable at {PG['host']}:{PG['port']} as user postgres: {exc}".strip()
    return None


def redis_unavailable() -> str | None:
    try:
        import redis
    except ImportError:
        return "the redis client is not installed"
    try:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        return f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT}: {exc}"
    return None


def airflow_postgres_celery_unavailable() -> str | None:
    """Why this Airflow cannot run CeleryExecutor on a PostgreSQL metadata DB here, or ``None``."""
    try:
        import airflow.providers.celery  # noqa: F401
    except ImportError:
        return "apache-airflow-providers-celery is not installed (it is in the dev dependency group: uv sync)"
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        return "asyncpg is not installed (Airflow 3 opens its PostgreSQL metadata DB with it too)"
    return None


@contextmanager
def throwaway_databases(*prefixes: str) -> Iterator[list[str]]:
    """Create one empty database per prefix (``<prefix>_<random>``); drop them all afterwards."""
    import psycopg2

    suffix = secrets.token_hex(4)
    names = [f"{p}_{suffix}" for p in prefixes]
    admin = psycopg2.connect(dbname="postgres", **PG)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            for name in names:
                cur.execute(f'CREATE DATABASE "{name}"')
        yield names
    finally:
        with admin.cursor() as cur:
            for name in names:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextmanager
def redis_database() -> Iterator[int]:
    """Claim an empty Redis database index for this run (marker key, 1 h expiry); flush it afterwards."""
    import redis

    for index in REDIS_DBS:
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=index)
        if client.dbsize() == 0 and client.set(_REDIS_CLAIM, str(os.getpid()), nx=True, ex=3600):
            try:
                yield index
            finally:
                client.flushdb()
            return
    raise RuntimeError(f"no empty Redis database among {list(REDIS_DBS)} on {REDIS_HOST}:{REDIS_PORT}")


class MetadataDB:
    """Read-only look at Airflow's metadata tables (cheaper than an ``airflow`` CLI call per poll)."""

    def __init__(self, database: str) -> None:
        self.database = database

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        import psycopg2
        import psycopg2.extras

        conn = psycopg2.connect(dbname=self.database, **PG)
        try:
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute(sql, params)
                return [dict(r) for r in cur.fetchall()]
        finally:
            conn.close()

    def first_tries(self, dag_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The first try of every task instance that was tried again (Airflow keeps each earlier try)."""
        return self.rows(
            "SELECT dag_id, run_id, task_id, state, pid, hostname, start_date, end_date, retry_reason "
            "FROM task_instance_history WHERE dag_id = ANY(%s) AND try_number = 1 ORDER BY dag_id, run_id, task_id",
            (list(dag_ids),),
        )

    def parsed_dags(self) -> set[str]:
        return {r["dag_id"] for r in self.rows("SELECT DISTINCT dag_id FROM serialized_dag")}

    def runs(self, dag_ids: Sequence[str]) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT dag_id, run_id, state, run_type, logical_date, data_interval_start, data_interval_end "
            "FROM dag_run WHERE dag_id = ANY(%s) ORDER BY dag_id, logical_date",
            (list(dag_ids),),
        )

    def task_instances(self, dag_ids: Sequence[str]) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT dag_id, run_id, task_id, state, try_number, pid, pool, queued_dttm, start_date, end_date "
            "FROM task_instance "
            "WHERE dag_id = ANY(%s) ORDER BY dag_id, run_id, task_id",
            (list(dag_ids),),
        )


class DistributedStack(AirflowStack):
    """:class:`AirflowStack` with CeleryExecutor on PostgreSQL + Redis, a triggerer and N Celery workers.

    :param metadata_db: name of the (empty) PostgreSQL database for Airflow's metadata.
    :param redis_db: the Redis database index of the broker.
    :param env: extra environment (connections, ``FBMKTO_*``), applied last.
    """

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        *,
        metadata_db: str,
        redis_db: int,
        env: Mapping[str, str] | None = None,
        parallelism: int = 8,
        heartbeat_timeout: int = 30,
    ) -> None:
        self.queue = f"fbmkto_e2e_{secrets.token_hex(3)}"
        self.metadata = MetadataDB(metadata_db)
        self.killed: set[str] = set()
        celery_env = {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg_url(metadata_db),
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
            "AIRFLOW__CELERY__RESULT_BACKEND": pg_url(metadata_db, "db+postgresql+psycopg2"),
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            # A task whose worker died is failed (and retried) once its heartbeat is this old.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(heartbeat_timeout),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            # A task whose message died with the worker before it started is re-queued after this.
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "180",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "15",
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        }
        super().__init__(home, dags_folder, {**celery_env, **(env or {})})

    # -- processes ------------------------------------------------------------------------------------------
    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start ``airflow <args>`` as a child in its own session, logging to ``stack-logs/<name>.log``."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def start_all(self, *, workers: int = 2, concurrency: int = 2) -> DistributedStack:
        """api-server, scheduler, dag-processor, triggerer and ``workers`` Celery workers."""
        self.start(("api-server", "scheduler", "dag-processor"))
        self.spawn("triggerer", "triggerer", "--skip-serve-logs")
        for n in range(1, workers + 1):
            self.start_worker(f"worker{n}", concurrency)
        return self

    def start_worker(self, name: str, concurrency: int = 2) -> subprocess.Popen[bytes]:
        """One ``airflow celery worker`` serving this stack's queue."""
        return self.spawn(
            name,
            "celery",
            "worker",
            "--concurrency",
            str(concurrency),
            "--celery-hostname",
            f"{name}-{self.queue}@%h",
            "--queues",
            self.queue,
            "--pid",
            str(self.home / f"{name}.pid"),
            "--skip-serve-logs",
            "--without-gossip",
            "--without-mingle",
        )

    def worker_of(self, pid: int) -> str | None:
        """The name of the worker whose process tree holds ``pid`` (a task process), if any."""
        workers = {p.pid: name for name, p in self.procs.items() if name.startswith("worker")}
        try:
            chain = [psutil.Process(pid), *psutil.Process(pid).parents()]
        except psutil.NoSuchProcess:
            return None
        for proc in chain:
            if proc.pid in workers:
                return workers[proc.pid]
        return None

    def kill_tree(self, name: str) -> list[int]:
        """SIGKILL the component ``name`` and every process below it (task processes have their own group)."""
        proc = self.procs[name]
        self.killed.add(name)
        try:
            root = psutil.Process(proc.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        for p in tree:
            with suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        return [p.pid for p in tree]

    def our_processes(self) -> list[psutil.Process]:
        """Every live process started by this stack: children of its components, and anything whose
        environment carries this stack's AIRFLOW_HOME (task processes re-parented after their worker died)."""
        found: dict[int, psutil.Process] = {}
        for proc in self.procs.values():
            try:
                root = psutil.Process(proc.pid)
                for p in [root, *root.children(recursive=True)]:
                    found[p.pid] = p
            except psutil.NoSuchProcess:
                continue
        home = str(self.home)
        for p in psutil.process_iter():
            if p.pid in found or p.pid == os.getpid():
                continue
            try:
                if p.environ().get("AIRFLOW_HOME") == home:
                    found[p.pid] = p
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return list(found.values())

    def stop(self) -> None:
        leftovers = self.our_processes()
        try:
            super().stop()
        finally:
            for p in [*leftovers, *self.our_processes()]:
                with suppress(psutil.NoSuchProcess):
                    p.send_signal(signal.SIGKILL)
            psutil.wait_procs(leftovers, timeout=10)

    # -- waiting ------------------------------------------------------------------------------------------
    def wait_until(self, what: str, predicate: Any, timeout: float, interval: float = 1.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not reached within {timeout:.0f}s")
            time.sleep(interval)

    def check_alive(self) -> None:
        """Raise with the log's tail when a component (other than one killed on purpose) has exited."""
        for name, proc in self.procs.items():
            if name in self.killed:
                continue
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"airflow {name} exited with {proc.returncode}:\n{tail}")


# --- FreshBooks token endpoint timing ---------------------------------------------------------------------


@dataclass
class TokenCall:
    start: float
    end: float
    status: int
    grant_type: str | None
    sent_refresh_token: str | None
    new_refresh_token: str | None


@dataclass
class TokenTimer:
    """ASGI middleware in front of a FreshBooks emulator: times every ``POST /auth/oauth/token`` call.

    Each token call is held ``hold`` seconds before the emulator sees it, so two refreshes that were not
    serialised would overlap in time (and the later one would spend an already spent refresh token).
    """

    app: Any
    hold: float = 0.3
    calls: list[TokenCall] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("path") != "/auth/oauth/token":
            await self.app(scope, receive, send)
            return
        start = time.monotonic()
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            message: dict[str, Any] = await receive()
            return message

        status = 0
        answer = b""

        async def capture(message: dict[str, Any]) -> None:
            nonlocal status, answer
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                answer += message.get("body", b"")
            await send(message)

        await asyncio.sleep(self.hold)
        await self.app(scope, replay, capture)
        request = _parse_body(body)
        response = _parse_body(answer)
        with self.lock:
            self.calls.append(
                TokenCall(
                    start=start,
                    end=time.monotonic(),
                    status=status,
                    grant_type=request.get("grant_type"),
                    sent_refresh_token=request.get("refresh_token"),
                    new_refresh_token=response.get("refresh_token"),
                )
            )


def _parse_body(raw: bytes) -> dict[str, Any]:
    import json
    from urllib.parse import parse_qsl

    text = raw.decode("utf-8", errors="replace").strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return dict(parse_qsl(text))


def overlapping(calls: Sequence[TokenCall]) -> list[tuple[TokenCall, TokenCall]]:
    """Pairs of token calls whose [start, end] intervals intersect."""
    ordered = sorted(calls, key=lambda c: c.start)
    return [(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1 :] if b.start < a.end]


# --- Marketo: answers lost with the worker ----------------------------------------------------------------


@dataclass
class AnswerGate:
    """ASGI middleware in front of the Marketo emulator: holds the *answer* of ``POST <path>`` for ``hold``
    seconds after Marketo has applied the request.

    A worker killed meanwhile never learns that its activities were written: the next try must find them in
    Marketo (the ledger's in-flight rows) instead of sending them again. ``held`` maps the client's TCP port
    to when its answer was held, so the test can find the task process waiting for it.
    """

    app: Any
    path: str
    hold: float = 2.0
    held: dict[int, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST" or scope.get("path") != self.path:
            await self.app(scope, receive, send)
            return
        if self.hold <= 0:
            await self.app(scope, receive, send)
            return
        answer: list[dict[str, Any]] = []

        async def keep(message: dict[str, Any]) -> None:
            answer.append(message)

        await self.app(scope, receive, keep)
        port = int((scope.get("client") or ("", 0))[1])
        with self.lock:
            self.held[port] = time.monotonic()
        try:
            await asyncio.sleep(self.hold)
        finally:
            with self.lock:
                self.held.pop(port, None)
        with suppress(Exception):  # the client may be dead: that is the point
            for message in answer:
                await send(message)

    def waiting_ports(self) -> list[int]:
        with self.lock:
            return list(self.held)


def owner_of_port(stack: DistributedStack, port: int) -> int | None:
    """The pid of the stack's process whose TCP connection has local port ``port``."""
    for proc in stack.our_processes():
        try:
            conns = proc.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if any(c.laddr and c.laddr.port == port for c in conns):
            return int(proc.pid)
    return None
