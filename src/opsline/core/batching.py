"""Paging a list for set-based work: IN-lists, bulk deletes and job fan-outs kept under a bound."""

from __future__ import annotations

from typing import Iterator, Sequence, TypeVar

T = TypeVar("T")


def pages(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of at most `size`, in order (the last may be shorter; none when `items` is empty).
    Raises ValueError for a size below 1."""
    if size < 1:
        raise ValueError(f"page size must be at least 1, not {size}")
    for start in range(0, len(items), size):
        yield items[start:start + size]
