# The two commands a newcomer runs: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SERVICE   ?= admission-webhook
NAMESPACE ?= admission-webhook

.PHONY: run test certs install lint bench fuzz soak experiment clean

# Reinstall when pyproject.toml changes (the stamp is older than it).
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,experiment]'
	touch $@

install: $(VENV)/.installed

certs/tls.crt certs/tls.key certs/ca.crt: | $(VENV)/.installed
	$(BIN)/python -m webhook certs --service $(SERVICE) --namespace $(NAMESPACE) \
		--host localhost --ip 127.0.0.1 --out certs

# Development certificates (a CA and a serving certificate for localhost, 127.0.0.1 and the
# in-cluster service names); kept when present and still valid.
certs: $(VENV)/.installed
	$(BIN)/python -m webhook certs --service $(SERVICE) --namespace $(NAMESPACE) \
		--host localhost --ip 127.0.0.1 --out certs

run: $(VENV)/.installed certs/tls.crt
	$(BIN)/python -m webhook serve --log-format console

test: $(VENV)/.installed
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check webhook tests
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(VENV)/.installed
	$(BIN)/python -m bench

fuzz: $(VENV)/.installed
	FUZZ_EXAMPLES=5000 $(BIN)/python -m pytest -m slow tests/test_fuzz.py -p no:randomly

soak: $(VENV)/.installed
	$(BIN)/python -m pytest -m slow tests/test_soak.py -s

experiment: $(VENV)/.installed
	$(BIN)/python -m webhook experiment --webhooks deploy/experiment/webhooks.yaml --out experiment-report

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .hypothesis .benchmarks .bench
