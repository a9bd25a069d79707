# CoinPilot. `make run` starts the daemon (installing the runtime only), `make test` runs the
# whole suite (installing the test, dev, bench and report extras too).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUM    := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
STAMP  := $(VENV)/.installed-$(SUM)
RUN_STAMP := $(VENV)/.installed-run-$(SUM)

.PHONY: run test test-strict lint typecheck fmt bench mutation install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The runtime alone for `make run`; the full set (a superset) satisfies both.
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	rm -f $(VENV)/.installed-run-* && touch $@

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,dev,bench,report]'
	rm -f $(VENV)/.installed-* && touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/coinpilot run

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The suite is strict already (unclosed resources, unraisable exceptions and asyncio errors
# fail it, see tests/hygiene.py); kept as a name for `make test`.
test-strict: test

lint: $(STAMP)
	$(BIN)/ruff check coinpilot tests bench
	$(BIN)/ruff format --check coinpilot tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format coinpilot tests bench
	$(BIN)/ruff check --fix coinpilot tests bench

bench: $(STAMP)
	$(BIN)/python -m bench

# Mutation testing of coinpilot/domain and the ledger with the fast tests (not part of
# `make test`; about 17 minutes on two cores). Results are kept in mutants/ and reused for
# unchanged functions; `$(BIN)/mutmut browse` shows each survivor. A score per file is
# printed; below 90 % (equivalent mutants, listed in tests/mutation_equivalent.txt,
# excluded) fails.
MUTATION_JOBS ?= 2
# The tests that read the real candle files skip here (see the data_dir fixture): mutmut
# forks a child per mutant, and polars' thread pool does not survive a fork.
mutation: $(STAMP)
	$(BIN)/pip install --quiet -e '.[mutation]'
	COINPILOT_LEDGER_PROFILE=mutation COINPILOT_TEST_KEEP_DB=1 \
	    $(BIN)/mutmut run --max-children $(MUTATION_JOBS) > mutants.log 2>&1 \
	    || { $(BIN)/python -m tests.kept_db drop; tail -40 mutants.log; exit 1; }
	$(BIN)/python -m tests.kept_db drop
	$(BIN)/python -m tests.mutation_report

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache mutants mutants.log

# `make install` (as root) sets CoinPilot up as a systemd service on this machine. Safe to
# re-run for upgrades: the code and venv are replaced, /etc/coinpilot is never overwritten.
PREFIX   ?= /opt/coinpilot
ETC_DIR  ?= /etc/coinpilot
UNIT_DIR ?= /etc/systemd/system
SVC_USER ?= coinpilot
# The service's venv must use an interpreter every user can reach (not one under /root or ~).
INSTALL_PYTHON ?= /usr/bin/python3
RELEASE  := coinpilot sql config systemd pyproject.toml README.md

# The venv gets the release editable, so the migrations in app/sql stay next to the code.
install:
	@test "$$(id -u)" = 0 || { echo "make install: run as root (sudo make install)" >&2; exit 1; }
	getent group $(SVC_USER) >/dev/null || groupadd --system $(SVC_USER)
	id -u $(SVC_USER) >/dev/null 2>&1 || useradd --system --gid $(SVC_USER) \
	    --home-dir /var/lib/coinpilot --no-create-home --shell /usr/sbin/nologin $(SVC_USER)
	install -d -m 0755 $(PREFIX)
	rm -rf $(PREFIX)/app.new && install -d -m 0755 $(PREFIX)/app.new
	cp -R $(RELEASE) $(PREFIX)/app.new/
	find $(PREFIX)/app.new -name __pycache__ -prune -exec rm -rf {} +
	rm -rf $(PREFIX)/app.old && { [ ! -d $(PREFIX)/app ] || mv $(PREFIX)/app $(PREFIX)/app.old; }
	mv $(PREFIX)/app.new $(PREFIX)/app && rm -rf $(PREFIX)/app.old
	[ -x $(PREFIX)/venv/bin/python ] || $(INSTALL_PYTHON) -m venv $(PREFIX)/venv
	$(PREFIX)/venv/bin/python -m pip install --quiet --upgrade pip
	$(PREFIX)/venv/bin/pip install --quiet -e $(PREFIX)/app
	$(PREFIX)/venv/bin/python -m compileall -q $(PREFIX)/app/coinpilot
	install -d -m 0755 $(ETC_DIR)
	[ -e $(ETC_DIR)/coinpilot.yaml ] || install -m 0644 config/coinpilot.yaml $(ETC_DIR)/coinpilot.yaml
	[ -e $(ETC_DIR)/coinpilot.env ] || install -m 0600 systemd/coinpilot.env.example $(ETC_DIR)/coinpilot.env
	install -m 0644 systemd/coinpilot.env.example $(ETC_DIR)/coinpilot.env.example
	install -d -m 0755 $(UNIT_DIR)
	sed -e 's#/opt/coinpilot#$(PREFIX)#g' -e 's#/etc/coinpilot#$(ETC_DIR)#g' \
	    -e 's#^User=coinpilot#User=$(SVC_USER)#' -e 's#^Group=coinpilot#Group=$(SVC_USER)#' \
	    systemd/coinpilot.service > $(UNIT_DIR)/coinpilot.service
	chmod 0644 $(UNIT_DIR)/coinpilot.service
	! [ -d /run/systemd/system ] || systemctl daemon-reload
	@echo "Installed. Edit $(ETC_DIR)/coinpilot.env, then: systemctl enable --now coinpilot"
