# Opsline: two commands on a fresh machine — `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ACCOUNTS ?= 2000
PYTEST_ARGS ?=

.PHONY: demo test install serve worker bench clean browser-deps lint

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# WeasyPrint needs Pango; browser tests need Debian's Chromium. Installed only when missing.
browser-deps:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	ldconfig -p | grep -q libpango-1.0 || missing="$$missing libpango-1.0-0 libpangoft2-1.0-0"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing fonts-dejavu-core >/dev/null; \
	fi

demo: $(STAMP) browser-deps
	$(VENV)/bin/opsline demo --reset --accounts $(ACCOUNTS)
	$(VENV)/bin/opsline serve --host 127.0.0.1 --port 8000

serve: $(STAMP)
	$(VENV)/bin/opsline serve

worker: $(STAMP)
	$(VENV)/bin/opsline worker

# The whole suite: unit, integration (SQLite, plus PostgreSQL when OPSLINE_TEST_POSTGRES_URL is set), functional and browser.
# pytest exits 5 when no test ran; that is a failure here, never a pass.
test: $(STAMP) browser-deps
	$(PY) -m pytest -n 2 -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests ran"; exit 1; fi; exit $$rc

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) opsline.db opsline.db-wal opsline.db-shm .pytest_cache .hypothesis
