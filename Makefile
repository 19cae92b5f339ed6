# The two commands a newcomer runs: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SERVICE   ?= admission-webhook
NAMESPACE ?= admission-webhook

.PHONY: run test certs install compile lint bench bench-instructions fuzz soak experiment clean

# Reinstall when pyproject.toml changes (the stamp is older than it).
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 'setuptools>=77'
	$(BIN)/python -m pip install --quiet -e '.[test,experiment]'
	touch $@

install: $(VENV)/.installed

# The request path compiled by mypyc into C extensions beside its sources (setup.py lists the
# modules; see webhook/compiled.py). Rebuilt when any source changes: a compiled module is bound to
# the signatures of what it calls. Without a C compiler the Python sources run, slower.
COMPILED := webhook/.compiled
$(COMPILED): $(VENV)/.installed setup.py $(shell find webhook -name '*.py')
	@if $(BIN)/python -c "import shutil, sysconfig, sys; sys.exit(not shutil.which(sysconfig.get_config_var('CC').split()[0]))"; then \
		echo "compiling the request path with mypyc (about a minute) ..."; \
		rm -f *__mypyc.*.so; find webhook -name '*.so' -delete; \
		WEBHOOK_COMPILE=1 $(BIN)/python setup.py --quiet build_ext --inplace --parallel 2 >.compile.log 2>&1 \
			|| { tail -40 .compile.log; exit 1; }; \
		touch $@; \
	else \
		echo "no C compiler found: running the Python sources (correct, but slower; see README)"; \
	fi

compile: $(COMPILED)

certs/tls.crt certs/tls.key certs/ca.crt: | $(VENV)/.installed
	$(BIN)/python -m webhook certs --service $(SERVICE) --namespace $(NAMESPACE) \
		--host localhost --ip 127.0.0.1 --out certs

# Development certificates (a CA and a serving certificate for localhost, 127.0.0.1 and the
# in-cluster service names); kept when present and still valid.
certs: $(VENV)/.installed
	$(BIN)/python -m webhook certs --service $(SERVICE) --namespace $(NAMESPACE) \
		--host localhost --ip 127.0.0.1 --out certs

run: $(COMPILED) certs/tls.crt
	$(BIN)/python -m webhook serve --log-format console

test: $(COMPILED)
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check webhook tests
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(COMPILED)
	$(BIN)/python -m bench

bench-instructions: $(COMPILED)
	$(BIN)/python -m bench.instructions

fuzz: $(COMPILED)
	FUZZ_EXAMPLES=5000 $(BIN)/python -m pytest -m slow tests/test_fuzz.py -p no:randomly

soak: $(COMPILED)
	$(BIN)/python -m pytest -m slow tests/test_soak.py -s

experiment: $(VENV)/.installed
	$(BIN)/python -m webhook experiment --webhooks deploy/experiment/webhooks.yaml --out experiment-report

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .hypothesis .benchmarks .bench build .compile.log $(COMPILED)
	find . -path ./.git -prune -o -name '*.so' -print | xargs rm -f
