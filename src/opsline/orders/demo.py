"""Demo data."""


def load_orders(ctx) -> None:  # type: ignore[no-untyped-def]
    pass
