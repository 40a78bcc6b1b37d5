"""The first-segment gate in front of each included router: it skips only routers that could not match."""

from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from opsline.web.routing import _GatedRouter, first_segment, include_router_gated


def test_first_segment_of_a_path_template_is_its_first_literal_part() -> None:
    assert first_segment("/cases/{id}/notes") == "cases"
    assert first_segment("/") == ""
    assert first_segment("/tmf-api/x/v4/y") == "tmf-api"


def test_gated_routers_answer_as_if_included_directly_and_a_parameter_first_router_is_not_gated() -> None:
    a, b, anything = APIRouter(), APIRouter(), APIRouter()

    @a.get("/cases/{case_id}")
    def case(case_id: int) -> dict[str, int]:
        return {"case": case_id}

    @b.post("/cases/{case_id}/notes")
    def note(case_id: int) -> dict[str, int]:
        return {"note": case_id}

    @b.get("/")
    def home() -> dict[str, str]:
        return {"home": "yes"}

    @anything.get("/{slug}/about")
    def about(slug: str) -> dict[str, str]:
        return {"about": slug}

    app = FastAPI()
    for r in (a, b, anything):
        include_router_gated(app, r)
    gates = [r.original_router for r in app.router.routes if isinstance(getattr(r, "original_router", None), _GatedRouter)]
    assert [g._gate_segments for g in gates] == [frozenset({"cases"}), frozenset({"cases", ""}), None]
    c = TestClient(app)
    assert c.get("/cases/7").json() == {"case": 7}
    assert c.post("/cases/7/notes").json() == {"note": 7}
    assert c.get("/").json() == {"home": "yes"}
    assert c.get("/acme/about").json() == {"about": "acme"}
    assert c.get("/nothing/here").status_code == 404
    assert c.delete("/cases/7").status_code == 405  # a path that matches with another method is still a 405, not a 404
