# SecureMed: `make run` and `make test` work on a fresh machine (they set up .venv first).
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PROTO   := securemed/transport/federation/v1/federation.proto
ARGS    ?=

export RAY_USAGE_STATS_ENABLED := 0
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup tools run smoke train-report serve audit audit-classifier audit-report sweep monitor test test-fast bench eval-phi protos certs lint clean

setup: $(STAMP)

## system tools the tests and `make monitor` need: Debian's prometheus (server and promtool)
tools:
	@command -v promtool >/dev/null 2>&1 || { \
		echo "installing Debian's prometheus package (promtool and the server)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends prometheus >/dev/null; }

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## the default federated job on a local Ray (ARGS="--output DIR" etc. pass through)
run: setup
	$(PY) jobs/federated.py --config configs/federated.yaml $(ARGS)

## the same job at smoke size: seconds
smoke: setup
	$(PY) jobs/federated.py --config configs/federated.yaml --smoke-test $(ARGS)

## the report model: standard, adversarial and DP variants, evaluated clean and under PGD
train-report: setup
	$(PY) jobs/train_report.py --config configs/report.yaml --output runs/report-$$(date +%Y%m%d-%H%M%S) $(ARGS)

## the report service on Ray Serve at http://127.0.0.1:8000 (deploy/serve.yaml): state in
## var/serve, the newest model under runs/ (a small one is trained first when there is none)
serve: setup
	$(PY) jobs/serve.py $(ARGS)

## the clinical-notes privacy audit: membership inference on baseline, regularized and DP
## fine-tunings, canary epsilon bounds; REPORT.md and plots in runs/audit-notes-<time>
audit: setup
	$(PY) jobs/audit.py notes --config configs/audit-notes.yaml --output runs/audit-notes-$$(date +%Y%m%d-%H%M%S) $(ARGS)

## the classifier's privacy audit: the same attacks on the chest X-ray classifier trained
## plainly, regularized and with DP-SGD; results in runs/audit-classifier-<time>
audit-classifier: setup
	$(PY) jobs/audit.py classifier --config configs/audit-classifier.yaml --output runs/audit-classifier-$$(date +%Y%m%d-%H%M%S) $(ARGS)

## the report generator's privacy audit: a start trained on public films, fine-tuned plainly,
## regularized and with DP-SGD on private films; results in runs/audit-report-<time>
audit-report: setup
	$(PY) jobs/audit.py report --config configs/audit-report.yaml --output runs/audit-report-$$(date +%Y%m%d-%H%M%S) $(ARGS)

## the privacy-utility sweep of the federated classifier: Ray Tune with ASHA over noise, clipping,
## learning rate, sampling rate and rounds; frontier table, PNG and recommended settings by epsilon
## budget in runs/sweep-<time> (ARGS="--trials 64 --budgets 1 2 4 8" etc.)
sweep: setup
	$(PY) jobs/sweep.py classifier --output runs/sweep-$$(date +%Y%m%d-%H%M%S) $(ARGS)

## Prometheus on the running local Ray at http://127.0.0.1:9090, with SecureMed's recording and
## alert rules (deploy/prometheus); Grafana dashboards to load are in deploy/grafana
RAY_TMP ?= /tmp/ray
monitor: tools
	@mkdir -p runs/prometheus
	@sed 's#/tmp/ray/prom_metrics_service_discovery.json#$(RAY_TMP)/prom_metrics_service_discovery.json#' \
		deploy/prometheus/prometheus.yml > runs/prometheus/prometheus.yml
	@cp -r deploy/prometheus/rules runs/prometheus/
	@echo "Prometheus on http://127.0.0.1:9090, scraping the Ray nodes listed in $(RAY_TMP)/prom_metrics_service_discovery.json"
	prometheus --config.file=runs/prometheus/prometheus.yml --storage.tsdb.path=runs/prometheus/data \
		--web.listen-address=127.0.0.1:9090 $(ARGS)

## every test; `make test-fast` skips the ones marked slow
test: setup tools
	$(PY) -m pytest -q $(ARGS)

test-fast: setup tools
	$(PY) -m pytest -q -m "not slow" $(ARGS)

## benchmarks, results as JSON in bench-results/
bench: setup
	$(PY) -m benchmarks.run --output bench-results/bench.json $(ARGS)

## the text PHI anonymizer on generated notes: per-entity recall/precision/F2, fails below target
eval-phi: setup
	$(PY) -m securemed.cli eval-phi $(ARGS)

## regenerate the gRPC stubs (a test checks they are in sync)
protos: setup
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=. --grpc_python_out=. --pyi_out=. protos/$(PROTO)

## a federation CA plus aggregator and hospital certificates for mutual TLS, in certs/
certs: setup
	$(PY) -m securemed.cli pki init --out certs --hospitals 4

lint: setup
	$(PY) -m ruff check securemed actors services jobs tests benchmarks
	$(PY) -m mypy securemed

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache bench-results
