"""The pages' Jinja environment: `row.name` on a dict reads the key directly, with Jinja's own answers kept."""

from __future__ import annotations

from opsline.web.templating import templates


def _render(source: str, **ctx: object) -> str:
    return templates.env.from_string(source).render(**ctx)


def test_dict_keys_read_as_attributes_and_missing_ones_are_undefined() -> None:
    row = {"subject": "<b>No signal</b>", "priority": 2, "assignee": None}
    assert _render("{{ r.subject }}|P{{ r.priority }}|{{ r.assignee or '—' }}|{{ r.missing is defined }}|[{{ r.missing }}]", r=row) == \
        "&lt;b&gt;No signal&lt;/b&gt;|P2|—|False|[]"


def test_a_dict_attribute_still_wins_over_a_key_of_the_same_name_as_in_jinja() -> None:
    # Jinja prefers the attribute: `result.items` is dict.items even when the dict has an "items" key, so pages
    # write result["items"]; the fast path must not change that answer.
    d = {"items": [1, 2], "get": "x"}
    assert _render("{{ d.items is callable }}|{{ d.get is callable }}|{{ d['items']|length }}", d=d) == "True|True|2"


def test_objects_and_other_mappings_go_through_jinjas_lookup() -> None:
    class Row:
        name = "Thabo"

    class Sub(dict):  # a dict subclass may define attributes of its own: Jinja's lookup, not the fast path
        label = "attr"

    assert _render("{{ o.name }}|{{ m.name }}|{{ m.label }}", o=Row(), m=Sub(name="sub", label="key")) == "Thabo|sub|attr"
