"""Demo data."""


def load_products(ctx) -> None:  # type: ignore[no-untyped-def]
    pass
