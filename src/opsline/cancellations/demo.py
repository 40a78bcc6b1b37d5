"""Demo cancellation journeys (filled in below)."""


def run(ctx) -> None:  # type: ignore[no-untyped-def]
    return None
