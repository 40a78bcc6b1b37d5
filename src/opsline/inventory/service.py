"""Inventory queries (placeholder while being written)."""


def products_panel(session, *, account_id, now):  # type: ignore[no-untyped-def]
    return {"products": []}


def equipment_panel(session, *, account_id, now):  # type: ignore[no-untyped-def]
    return {"equipment": []}
