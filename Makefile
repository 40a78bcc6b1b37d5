# Opsline: two commands on a fresh machine — `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ACCOUNTS ?= 2000
PYTEST_ARGS ?=

.PHONY: lock demo test install serve worker bench clean browser-deps pdf-deps lint

# Installs the locked versions (constraints.txt). Debian without python3-venv has no ensurepip: fall back to virtualenv, installed for this user (no root).
$(STAMP): pyproject.toml constraints.txt
	@echo "installing Opsline and its test tools into $(VENV)"
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { rm -rf $(VENV); echo "python3 -m venv is unavailable (no python3-venv); using virtualenv"; \
	  $(PYTHON) -m pip install -q --user virtualenv 2>/dev/null || $(PYTHON) -m pip install -q --user --break-system-packages virtualenv; \
	  $(PYTHON) -m virtualenv -q $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]' -c constraints.txt
	touch $(STAMP)

# The versions the suite last passed with (constraints.txt pins them; pyproject.toml keeps the supported ranges).
lock: $(STAMP)
	{ echo '# Locked versions the suite passes with: `make install` installs with `-c constraints.txt`; `make lock` refreshes it.'; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^opsline'; } > constraints.txt

install: $(STAMP)

# WeasyPrint (PDF invoices and letters) needs Pango; browser tests also need Debian's Chromium. Installed only when
# missing, waiting for a busy apt lock instead of failing. `make demo` needs no browser: it asks only for Pango, and
# without root or password-less sudo it says what to install and goes on (PDFs then answer a clear error).
APT = env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300
define apt_install
	@missing="$(1)"; missing=$$(echo $$missing); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi; \
	  if [ "$$SUDO" = none ]; then echo "missing Debian packages: $$missing (install them as root: apt-get install $$missing)"; $(2) \
	  else echo "installing Debian packages: $$missing"; \
	    $$SUDO $(APT) update -qq && $$SUDO $(APT) install -y -qq $$missing fonts-dejavu-core >/dev/null; fi; \
	fi
endef
PANGO_MISSING = $(shell ldconfig -p 2>/dev/null | grep -q libpango-1.0 || echo libpango-1.0-0 libpangoft2-1.0-0)
CHROMIUM_MISSING = $(shell [ -x /usr/bin/chromium ] || echo chromium)

pdf-deps:
	$(call apt_install,$(PANGO_MISSING),true;)

browser-deps:
	$(call apt_install,$(PANGO_MISSING) $(CHROMIUM_MISSING),exit 1;)

demo: $(STAMP) pdf-deps
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
	$(PY) -m pip install -q -e '.[bench]' -c constraints.txt
	@for b in bench/[!_]*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench

clean:
	rm -rf $(VENV) opsline.db opsline.db-wal opsline.db-shm .pytest_cache .hypothesis
