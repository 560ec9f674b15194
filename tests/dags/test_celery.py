"""safety_audit on a real CeleryExecutor cluster on this machine: PostgreSQL metadata, Redis broker, two workers.

Starts api-server (free loopback port), scheduler, dag-processor and two Celery workers with distinct names:
``gpu-worker`` serves queue ``gpu`` (generate tasks), ``cpu-worker`` serves ``default`` (everything else),
the split docker-compose.yml uses. Triggers the DAG on the tiny spec and checks that each task ran on the
worker its queue names (task instance ``hostname``) and that the warehouse holds exactly the planned rows.

Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres) and Redis on 127.0.0.1:6379; skips
otherwise. A fresh database is created and dropped; Redis db ``REDIS_DB`` is flushed before and after.
Every process started here is its own process group and is terminated in ``finally``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import closing, suppress
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from pipelines import airflow_local, tasks

pytestmark = [pytest.mark.celery, pytest.mark.slow]

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 11
RUN_DEADLINE_S = 480  # the DAG run itself; component start-up has its own bounds
N_EXPECTED = 4  # tiny spec: 2 prompts x 2 method points
AIRFLOW = str(Path(sys.executable).parent / "airflow")


def _free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg(dbname: str = "postgres"):
    import psycopg2

    con = psycopg2.connect(dbname=dbname, connect_timeout=3, **PG)
    con.autocommit = True
    return con


def _redis():
    import redis

    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_connect_timeout=3)


@pytest.fixture
def services():
    """A fresh PostgreSQL database and an empty Redis db; skip when either server is not running."""
    try:  # by distribution: importing the provider would configure airflow in this process
        version("apache-airflow-providers-celery")
    except PackageNotFoundError:
        pytest.skip("apache-airflow-providers-celery is not installed (pip install -e '.[celery]')")
    try:
        con = _pg()
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable on {PG['host']}:{PG['port']} as {PG['user']}: {exc}")
    try:
        _redis().ping()
    except Exception as exc:
        con.close()
        pytest.skip(f"Redis not reachable on {REDIS_HOST}:{REDIS_PORT}: {exc}")
    dbname = f"safeaudit_af_{secrets.token_hex(4)}"
    with con.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{dbname}"')  # generated name, not user input
    _redis().flushdb()
    try:
        yield dbname
    finally:
        with con.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        con.close()
        _redis().flushdb()


class Cluster:
    """Airflow components as process groups, each logging to a file under ``logs``."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.env, self.logs, self.procs = env, logs, {}

    def start(self, name: str, args: list[str], **extra_env: str) -> None:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.procs[name] = (
            subprocess.Popen(
                [AIRFLOW, *args],
                env=self.env | extra_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=airflow_local.REPO,
            ),
            log,
        )

    def check_alive(self) -> None:
        for name, (proc, _) in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, n: int = 4000) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-n:]

    def stop(self) -> None:
        for proc, _ in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc, log in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            log.close()
        # a worker's task processes may outlive their parent in the group: sweep the groups once more
        for proc, _ in self.procs.values():
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def _wait(what: str, predicate, timeout: float, cluster: Cluster, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cluster.check_alive()
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _cli(env: dict[str, str], args: list[str], timeout: float = 120) -> None:
    done = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"airflow {' '.join(args[:2])}: {(done.stderr or done.stdout)[-3000:]}"


def _query(dbname: str, sql: str, params: tuple = ()) -> list[tuple]:
    con = _pg(dbname)
    try:
        with con.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    except Exception:  # tables not created yet, or a transient error while components start
        return []
    finally:
        con.close()


def test_celery_cluster_runs_the_audit(services, tiny_conf, tmp_path):
    dbname = services
    api_port = _free_port()
    home = tmp_path / "airflow_home"
    home.mkdir()
    (tmp_path / "logs").mkdir()
    env = airflow_local.airflow_env(home, parallelism=3)
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{dbname}",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://postgres@127.0.0.1:5432/{dbname}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),  # shared by every component
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the triggered run; no @daily run appears
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "SAFEAUDIT_RETRY_DELAY_S": "5",
        }
    )
    env.pop(tasks.FAULTS_ENV, None)
    out = tmp_path / "audit"
    conf = tiny_conf(out, tag="celery")
    cluster = Cluster(env, tmp_path / "logs")
    started = time.monotonic()
    try:
        _cli(env, ["db", "migrate"], timeout=300)
        _cli(env, ["pools", "set", airflow_local.GPU_POOL, "1", "GPU slots for generate tasks"])
        setup_s = time.monotonic() - started
        cluster.start("api-server", ["api-server", "--workers", "1"])
        cluster.start("scheduler", ["scheduler"])
        cluster.start("dag-processor", ["dag-processor"])
        for name, queues, log_port in (
            ("gpu-worker", "gpu", _free_port()),
            ("cpu-worker", "default", _free_port()),
        ):
            cluster.start(
                name,
                [
                    "celery",
                    "worker",
                    "--queues",
                    queues,
                    "--concurrency",
                    "1",
                    "--celery-hostname",
                    f"{name}@%h",
                ],
                SAFEAUDIT_WORKER_NAME=name,
                AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(log_port),
            )

        def api_healthy() -> bool:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{api_port}/api/v2/monitor/health", timeout=3
                ) as r:
                    return r.status == 200
            except OSError:
                return False

        _wait("the api-server", api_healthy, 180, cluster)
        _wait(
            "safety_audit to be parsed",
            lambda: _query(dbname, "SELECT 1 FROM serialized_dag WHERE dag_id = 'safety_audit'"),
            180,
            cluster,
        )
        ready_s = time.monotonic() - started
        _cli(env, ["dags", "trigger", "safety_audit", "--conf", json.dumps(conf), "--run-id", "celery_test"])

        def finished():
            rows = _query(
                dbname, "SELECT state FROM dag_run WHERE dag_id = 'safety_audit' AND run_id = 'celery_test'"
            )
            return rows and rows[0][0] in ("success", "failed") and rows[0][0]

        state = _wait("the DAG run to finish", finished, RUN_DEADLINE_S, cluster, interval=3)
        run_s = time.monotonic() - started - ready_s
        tis = _query(
            dbname,
            "SELECT task_id, map_index, state, hostname, queue, try_number FROM task_instance "
            "WHERE dag_id = 'safety_audit' AND run_id = 'celery_test' ORDER BY task_id, map_index",
        )
        print(f"\ncelery: setup {setup_s:.0f} s, components ready {ready_s:.0f} s, DAG run {run_s:.0f} s")
        for ti in tis:
            print("  ", ti)
        assert state == "success", "\n".join(str(t) for t in tis) + "\n" + cluster.tail("cpu-worker")

        hosts = {(task_id, queue): set() for task_id, _, _, _, queue, _ in tis}
        for task_id, _, _, hostname, queue, _ in tis:
            hosts[(task_id, queue)].add(hostname)
        assert hosts[("generate", "gpu")] == {"gpu-worker"}
        for (task_id, queue), names in hosts.items():
            if task_id != "generate":
                assert (queue, names) == ("default", {"cpu-worker"}), task_id
        assert {h for _, _, _, h, _, _ in tis} == {"gpu-worker", "cpu-worker"}

        from pipelines.warehouse import reader

        con = reader(conf["overrides"]["output"]["warehouse"])
        try:
            ((n, reused, batches),) = con.execute(
                "SELECT count(*), count(*) FILTER (WHERE reused), count(DISTINCT batch_id) FROM generations"
            ).fetchall()
            workers = {w for (w,) in con.execute("SELECT DISTINCT worker FROM batches").fetchall()}
        finally:
            con.close()
        assert (n, reused, batches) == (N_EXPECTED, 0, 2)
        assert workers, "batch manifests record the generating worker"
    except BaseException:
        for name in cluster.procs:
            print(f"----- {name} (tail) -----\n{cluster.tail(name, 3000)}")
        raise
    finally:
        cluster.stop()
