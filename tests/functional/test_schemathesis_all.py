"""Schemathesis over every operation of /openapi.json under /tmf-api and /api/sla, with every built-in check and
Hypothesis' health checks on, OPSLINE_SCHEMATHESIS_EXAMPLES (default 100) examples per operation, against a demo
database (orders, quotes, partner orders, bill runs, invoices, payments, cases), signed in with an admin API token.

Stateful testing: /openapi.json declares no OpenAPI `links`, so there is no stateful phase to run (schemathesis
builds its state machine from links only); every operation is tested on its own.

Failures of all operations are collected and reported together. The only tolerated ones are listed in EXCLUDED
(operation + check + reason); an excluded check is switched off for that operation only.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import BACKENDS, NOW, Clock, _truncate_all
from conftest import test_settings as app_settings

from opsline.core.events import Actor
from opsline.db.session import make_engine, make_sessionmaker
from opsline.demo import run_demo
from opsline.users.service import create_api_client

EXAMPLES = int(os.environ.get("OPSLINE_SCHEMATHESIS_EXAMPLES", "100"))
PATHS = r"^/(tmf-api/|api/sla/)"
# PostgreSQL: the same operations at EXAMPLES_PG examples each (default EXAMPLES); see the README for runtimes.
EXAMPLES_PG = int(os.environ.get("OPSLINE_SCHEMATHESIS_EXAMPLES_PG", str(EXAMPLES)))

# (METHOD, path template) -> {check name: reason}. Keep this short and precise; each entry is a known, reported gap.
EXCLUDED: dict[tuple[str, str], dict[str, str]] = {}


@pytest.fixture(scope="module", params=BACKENDS)
def demo_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sqlite_template: str) -> Iterator[tuple[Any, dict[str, str], str]]:
    from opsline.web.app import create_app

    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("schemathesis") / "demo.db"
        shutil.copy(sqlite_template, path)
        engine = make_engine(f"sqlite:///{path}")
    else:
        engine = request.getfixturevalue("pg_engine")
        _truncate_all(engine)
    run_demo(engine, accounts=30, now=NOW)
    with make_sessionmaker(engine).begin() as s:
        _, token = create_api_client(s, name="schemathesis-all", roles=["admin"], now=NOW, actor=Actor.system("test"))
    app = create_app(settings=app_settings(engine), engine=engine, clock=Clock(NOW), start_worker=False)
    yield app, {"Authorization": f"Bearer {token}"}, request.param
    if request.param == "sqlite":
        engine.dispose()


def _run(operation: Any, headers: dict[str, str], examples: int, excluded: list[Any]) -> None:
    from hypothesis import Phase, given, settings

    # Health checks stay on (no suppress_health_check); shrinking is off so a failure is reported as found.
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None, phases=[Phase.explicit, Phase.generate],
              report_multiple_bugs=False)
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        case.call_and_validate(headers=headers, excluded_checks=excluded)

    check()


def test_every_api_operation_conforms_to_openapi_under_all_checks(demo_app):
    import schemathesis
    from schemathesis.checks import CHECKS, load_all_checks

    load_all_checks()
    app, headers, backend = demo_app
    examples = EXAMPLES if backend == "sqlite" else EXAMPLES_PG
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=headers)
    operations = [r.ok() for r in schema.include(path_regex=PATHS).get_all_operations()]
    assert len(operations) >= 90, len(operations)
    by_name = {c.__name__: c for c in CHECKS.get_all()}
    assert len(by_name) >= 10, sorted(by_name)  # all built-in checks are registered and run by default
    unknown = {(k, name) for k, v in EXCLUDED.items() for name in v if name not in by_name}
    assert not unknown, unknown
    failures: list[str] = []
    started = time.monotonic()
    for op in operations:
        excluded = [by_name[name] for name in EXCLUDED.get((op.method.upper(), op.path), {})]
        try:
            _run(op, headers, examples, excluded)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - FailureGroup is a BaseExceptionGroup; collected below
            failures.append(f"{op.method.upper()} {op.path}: {type(exc).__name__}: {str(exc)[:1500]}")
    print(f"schemathesis[{backend}]: {len(operations)} operations x {examples} examples, all checks, "
          f"{time.monotonic() - started:.0f}s, {len(failures)} failing")
    assert not failures, f"{len(failures)} operations fail:\n\n" + "\n\n".join(failures)
