# Two commands do all set-up on a fresh machine:
#   make run    the main job on the embedded default (broker + collector + worker + sample fleet)
#   make test   lint + every test, integration tests on a real Kafka broker and the real ClickHouse engine
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install kafka browser lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing Python dependencies into $(VENV) (first time: about a minute) ..."
	@$(BIN)/pip install --quiet --upgrade pip
	@$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

kafka: $(STAMP)
	@$(BIN)/python -c "from streams.config import Settings; from streams.kafka.jars import ensure_kafka_jars; ensure_kafka_jars(Settings.from_env().cache_dir)"

run: install
	@$(BIN)/denomas-usage demo

# The dashboard's browser tests drive Debian's chromium (Playwright cannot download its own browsers here).
browser:
	@command -v chromium >/dev/null || { test "$$(id -u)" = 0 && command -v apt-get >/dev/null \
		&& echo "installing chromium (apt) for the dashboard's browser tests ..." \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium is missing and cannot be installed here: tests/browser/test_dashboard.py will fail"

lint: install
	@$(BIN)/ruff check streams fleet tests bench

test: install kafka browser lint
	@$(BIN)/python -m pytest -ra

bench: install kafka
	@$(BIN)/python -m bench

clean:
	rm -rf run .pytest_cache .ruff_cache
