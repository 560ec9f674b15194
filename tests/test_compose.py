"""docker-compose.yml and docker/Dockerfile, checked as text (Docker cannot run on this machine or in CI).

What a cluster needs from them: every Airflow component on one image built from this repository, the
CeleryExecutor against PostgreSQL + Redis, GPU workers that reserve NVIDIA devices and serve only queue
`gpu`, CPU workers on `default`, shared artifacts, healthchecks, and secrets only from the environment.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "docker" / "Dockerfile"
ENV_EXAMPLE = REPO / "docker" / ".env.example"

AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker-gpu": "celery",
    "airflow-worker-cpu": "celery",
}
SECRET_WORDS = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY\b|SQL_ALCHEMY_CONN|RESULT_BACKEND|BROKER_URL")
VAR = re.compile(r"(?<!\$)\$\{([A-Z0-9_]+)(:?[-?][^}]*)?\}")  # $${X} is the container's own variable


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _command(service: dict) -> list[str]:
    cmd = service["command"]
    return cmd if isinstance(cmd, list) else cmd.split()


def _queues(service: dict) -> set[str]:
    cmd = _command(service)
    return set(cmd[cmd.index("--queues") + 1].split(","))


def test_services_present(services):
    assert set(services) >= {"postgres", "redis", "airflow-init", "dashboard", *AIRFLOW_SERVICES}
    for name, sub in AIRFLOW_SERVICES.items():
        assert sub in _command(services[name]), name
    assert _command(services["dashboard"])[:2] == ["safeaudit", "dashboard"]
    assert {"--port", "8501", "--host", "0.0.0.0"} <= set(_command(services["dashboard"]))


def test_one_image_built_from_the_repository(services):
    built = {name: s["build"] for name, s in services.items() if "build" in s}
    assert built, "the compose file builds the image"
    assert {(b["context"], b["dockerfile"]) for b in built.values()} == {(".", "docker/Dockerfile")}
    upstream = ("postgres", "redis", "dashboard-auth")  # pinned third-party images
    ours = {name: s["image"] for name, s in services.items() if name not in upstream}
    assert len(set(ours.values())) == 1, ours
    for name in upstream:
        assert ":" in services[name]["image"] and not services[name]["image"].endswith(":latest"), (
            "pin images"
        )


def test_celery_executor_on_postgres_and_redis(services):
    for name in [*AIRFLOW_SERVICES, "airflow-init"]:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert "@postgres:5432/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert (
            env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
            and "@redis:6379/" in env["AIRFLOW__CELERY__BROKER_URL"]
        )
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
        # tasks reach the api-server's execution API by service name (else: connection refused)
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/safeaudit/dags"
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == deps["redis"]["condition"] == "service_healthy"
        if name != "airflow-init":
            assert deps["airflow-init"]["condition"] == "service_completed_successfully"
    init = " ".join(_command(services["airflow-init"]))
    assert "airflow db migrate" in init and "airflow pools set gpu" in init


def test_gpu_workers_reserve_nvidia_devices_and_serve_queue_gpu(services):
    gpu, cpu = services["airflow-worker-gpu"], services["airflow-worker-cpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert _queues(gpu) == {"gpu"}
    assert _queues(cpu) == {"default"}
    assert "deploy" not in cpu or "devices" not in str(cpu["deploy"])


def test_dag_queues_match_the_workers(services):
    """The DAG file routes generate to `gpu`; the compose workers serve exactly the queues the DAG uses."""
    dag = (REPO / "dags" / "safety_audit.py").read_text()
    assert re.search(r'@task\(queue="gpu", pool="gpu"', dag)
    served = _queues(services["airflow-worker-gpu"]) | _queues(services["airflow-worker-cpu"])
    assert served == {"gpu", "default"}


def test_shared_volumes(compose, services):
    declared = set(compose["volumes"])
    assert {"artifacts", "warehouse", "postgres-data"} <= declared

    def mounts(name: str) -> dict[str, str]:
        out = {}
        for v in services[name]["volumes"]:
            src, dst, *mode = v.split(":")
            assert src in declared, f"{name}: {src} is not a named volume"
            out[src] = dst + (":" + mode[0] if mode else "")
        return out

    for name in ("airflow-worker-gpu", "airflow-worker-cpu"):
        assert mounts(name)["artifacts"] == "/opt/safeaudit/artifacts", name
    assert mounts("airflow-worker-cpu")["warehouse"] == "/opt/safeaudit/warehouse"  # load: the single writer
    assert "warehouse" not in mounts("airflow-worker-gpu")
    dash = mounts("dashboard")
    assert dash["artifacts"].endswith(":ro")
    # the dashboard writes reviewer labels into labels/ beside the warehouse file (the loader folds them in)
    assert dash["warehouse"] == "/opt/safeaudit/warehouse"
    assert "s3://" in COMPOSE.read_text(), "document object storage as the alternative to the volume"


def test_healthchecks(services):
    for name, service in services.items():
        if name == "airflow-init":
            assert service["restart"] == "no"
            continue
        check = service.get("healthcheck")
        assert check and check["test"] and check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert {"interval", "timeout", "retries"} <= set(check), name


def test_secrets_only_from_environment(compose):
    text = COMPOSE.read_text()
    env_keys = set(
        re.findall(r"^(?:# )?([A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.M)
    )  # optional ones commented
    referenced = {m.group(1) for m in VAR.finditer(text)}
    assert referenced <= env_keys, f"document in docker/.env.example: {sorted(referenced - env_keys)}"

    def walk(node, path=""):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from walk(v, f"{path}[{i}]")
        else:
            yield path, node

    for path, value in walk(compose):
        key = path.rsplit(".", 1)[-1]
        if SECRET_WORDS.search(key) and isinstance(value, str) and value:
            # a secret-bearing value must take its secret from a variable, required (`:?`) or blank
            assert VAR.search(value), f"{path} is a literal"
            for m in VAR.finditer(value):
                if SECRET_WORDS.search(m.group(1)) and m.group(1) not in (
                    "AWS_SECRET_ACCESS_KEY",
                    "AWS_ACCESS_KEY_ID",
                ):
                    assert (m.group(2) or "").startswith(":?"), (
                        f"{path}: {m.group(1)} must be required, not defaulted"
                    )
    # the example carries no values for secrets
    for line in ENV_EXAMPLE.read_text().splitlines():
        key, _, value = line.partition("=")
        if SECRET_WORDS.search(key) and not line.startswith("#"):
            assert value == "", f"docker/.env.example sets {key}"


def test_dockerfile_installs_the_lock_with_torch_pinned():
    text = DOCKERFILE.read_text()
    install = re.search(r"pip install -c constraints\.txt[^\n]*\n(?:[^\n]*\\\n)*[^\n]*", text)
    assert install, "one pip command with -c constraints.txt"
    cmd = install.group(0)
    assert '"torch==${TORCH_VERSION}+${TORCH_VARIANT}"' in cmd and '-e ".[celery]"' in cmd, cmd
    pinned = re.search(r"^ARG TORCH_VERSION=(\S+)$", text, re.M).group(1)
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"torch=={pinned}" in deps, "the image's torch is the version pyproject pins"
    lock = re.search(r"^torch==([^+\s]+)", (REPO / "constraints.txt").read_text(), re.M)
    assert lock and lock.group(1) == pinned
    assert "COPY constraints.txt" in text or re.search(r"^COPY [^\n]*constraints\.txt", text, re.M)
    assert re.search(r"^FROM python:\$\{PYTHON_VERSION\}", text, re.M) and "ARG PYTHON_VERSION=3.11" in text
    assert re.search(r"^USER airflow$", text, re.M), "services do not run as root"
    assert not re.search(r"(?i)^ENV [^\n]*(password|secret)", text, re.M)
    assert "COPY . " not in text, "copy only what the package needs (no .venv or artifacts)"


# -- security defaults (issue 15 item 13); on c1bbf7d every test below failed ----------------------------
CADDYFILE = REPO / "docker" / "Caddyfile"
FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"


def _resolve(text: str) -> str:
    """A compose value with every ${X:-default} replaced by its default (what an empty .env gives)."""
    return VAR.sub(lambda m: (m.group(2) or "")[2:] if (m.group(2) or "").startswith(":-") else "", text)


def test_published_ports_bind_loopback_by_default(services):
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert set(published) == {"airflow-apiserver", "dashboard-auth"}, published
    for name, ports in published.items():
        for spec in ports:
            host_ip = _resolve(str(spec)).split(":")[0]
            assert host_ip == "127.0.0.1", f"{name} publishes {spec} beyond loopback by default"
    for name in ("postgres", "redis", "dashboard"):
        assert "ports" not in services[name], name


def test_dashboard_only_behind_an_authenticating_front(compose, services):
    dash, front = services["dashboard"], services["dashboard-auth"]
    assert "ports" not in dash and dash["networks"] == ["dashboard-internal"]
    assert compose["networks"]["dashboard-internal"]["internal"] is True
    attached = {n for n, s in services.items() if "dashboard-internal" in (s.get("networks") or [])}
    assert attached == {"dashboard", "dashboard-auth"}  # nothing else can reach the dashboard directly
    assert front["image"].startswith("caddy:") and not front["image"].endswith(":latest")
    assert "./docker/Caddyfile:/etc/caddy/Caddyfile:ro" in front["volumes"]
    assert front["secrets"] == ["dashboard_users"]
    caddy = CADDYFILE.read_text()
    assert re.search(r"basic_auth \{\s*import /run/secrets/dashboard_users\s*\}", caddy)
    assert re.search(
        r"reverse_proxy dashboard:8501 \{\s*header_up X-Forwarded-User \{http\.auth\.user\.id\}", caddy
    )
    # the dashboard takes the reviewer from exactly the header its front sets
    assert dash["environment"]["SAFEAUDIT_REVIEWER_HEADER"] == "X-Forwarded-User"
    assert "dashboard_users" in compose["secrets"] and compose["secrets"]["dashboard_users"][
        "file"
    ].startswith("./docker/secrets/")


def test_airflow_uses_the_fab_auth_manager_with_an_admin_from_a_secret(compose, services):
    text = COMPOSE.read_text()
    assert "SIMPLE_AUTH_MANAGER" not in text
    for name in [*AIRFLOW_SERVICES, "airflow-init"]:
        assert services[name]["environment"]["AIRFLOW__CORE__AUTH_MANAGER"] == FAB, name
    init = services["airflow-init"]
    assert init["secrets"] == ["airflow_admin_password"]
    cmd = " ".join(_command(init))
    assert "airflow users create --role Admin" in cmd
    assert '--password "$$(cat /run/secrets/airflow_admin_password)"' in cmd
    assert compose["secrets"]["airflow_admin_password"]["file"] == "./docker/secrets/airflow_admin_password"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "apache-airflow-providers-fab" in extras["celery"]  # the image installs .[celery]
    assert re.search(r"^apache-airflow-providers-fab==\S+$", (REPO / "constraints.txt").read_text(), re.M)
    ignore = (REPO / "docker" / "secrets" / ".gitignore").read_text().split()
    assert ignore[0] == "*", "secret files are never committed"


def test_dashboard_gets_no_storage_or_airflow_secrets(services):
    env = services["dashboard"].get("environment") or {}
    assert not [k for k in env if k.startswith("AWS_") or SECRET_WORDS.search(k) or k.startswith("AIRFLOW")]
    assert "secrets" not in services["dashboard"]
    for name in ("airflow-worker-gpu", "airflow-worker-cpu"):
        assert "AWS_ACCESS_KEY_ID" in services[name]["environment"], name  # the workers keep them
