# safeaudit — two set-up commands: `make audit` (the default audit end to end) and `make test`.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
SPEC    ?= runspecs/toy.yaml
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install audit audit-local test test-fast lint browser dashboard clean

# One pip command with torch pinned next to everything else keeps the CPU wheel (a looser pin pulls CUDA).
$(VENV)/.installed: pyproject.toml constraints.txt scripts/fetch_scorer_models.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e '.[test,celery]'
	$(PY) scripts/fetch_scorer_models.py
	touch $@

install: $(VENV)/.installed

## make audit: the default audit (toy model, every method x level), run by Airflow itself (dags test).
audit: install
	$(VENV)/bin/safeaudit audit --spec $(SPEC)

## the same audit without Airflow (plan -> generate -> score -> load in one process)
audit-local: install
	$(VENV)/bin/safeaudit run $(SPEC)

browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

test: install browser dbt-venv
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow and not celery and not browser and not tradeoff"

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

dashboard: install
	$(VENV)/bin/safeaudit dashboard

clean:
	rm -rf artifacts warehouse airflow_home .pytest_cache sql/dbt/target sql/dbt/models sql/dbt/logs

## dbt: the SQL layer as a dbt project (sql/dbt), in its own virtualenv (dbt-adapters needs protobuf < 7,
## the main lock pins 7). The models are rendered from sql/views; tests and docs read the read snapshot.
DBT_VENV  ?= .venv-dbt
WAREHOUSE ?= warehouse/safeaudit.duckdb
.PHONY: dbt-venv dbt-models dbt-test dbt-docs

$(DBT_VENV)/.installed: sql/dbt/requirements.txt
	test -x $(DBT_VENV)/bin/python || $(PYTHON) -m venv $(DBT_VENV)
	$(DBT_VENV)/bin/pip install -q --upgrade pip
	$(DBT_VENV)/bin/pip install -q -c sql/dbt/requirements.txt -r sql/dbt/requirements.txt
	touch $@

dbt-venv: $(DBT_VENV)/.installed

dbt-models: install
	$(PY) -m pipelines.dbt_project

## dbt test on the published read snapshot of $(WAREHOUSE) (attached READ_ONLY; the writer is untouched)
dbt-test: install dbt-venv dbt-models
	SAFEAUDIT_DBT=$(abspath $(DBT_VENV))/bin/dbt $(PY) -m pipelines.dbt_run test --warehouse $(WAREHOUSE)

## dbt docs (lineage graph) from the snapshot: sql/dbt/target/static_index.html (opens from disk)
dbt-docs: install dbt-venv dbt-models
	SAFEAUDIT_DBT=$(abspath $(DBT_VENV))/bin/dbt $(PY) -m pipelines.dbt_run docs --warehouse $(WAREHOUSE)
