"""core.batching.pages: the one way set-based code splits a list of ids or rows into bounded slices."""

import pytest

from opsline.core.batching import pages


def test_pages_cover_every_item_once_in_order_with_only_the_last_page_short():
    items = list(range(2501))
    parts = list(pages(items, 1000))
    assert [len(p) for p in parts] == [1000, 1000, 501]
    assert [x for p in parts for x in p] == items


def test_an_exact_multiple_has_no_empty_page_and_an_empty_list_has_no_page():
    assert [list(p) for p in pages([1, 2, 3, 4], 2)] == [[1, 2], [3, 4]]
    assert list(pages([], 1000)) == []


def test_a_page_is_a_slice_of_the_same_kind_of_sequence():
    assert list(pages(("a", "b", "c"), 2)) == [("a", "b"), ("c",)]


@pytest.mark.parametrize("size", [0, -5])
def test_a_page_size_below_one_is_refused(size):
    with pytest.raises(ValueError, match="at least 1"):
        list(pages([1, 2], size))
