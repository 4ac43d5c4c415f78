"""Counting a long list only as far as anyone reads it.

A lead's review queue at a large trust can hold tens of thousands of rows when
reviews fall behind; counting them all joins every documented variance to its
episode (about 200 ms at 500,000 episodes, bench/pages.py) on every page view.
Counted up to a cap, the database stops at the cap's row (a few milliseconds),
and the page says "more than" instead of a number nobody acts on.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property


def capped_count(queryset: QuerySet, cap: int) -> tuple[int, bool]:
    """``(count, more)``: the number of rows up to ``cap``, and whether there are more."""
    n = queryset[: cap + 1].count()
    return min(n, cap), n > cap


class CappedPaginator(Paginator):
    """A paginator whose count stops at ``cap`` rows; ``more`` says whether the list goes on.

    Pages after the cap are not reachable: narrow the list instead (a filter).
    """

    def __init__(self, object_list, per_page, *, cap: int, **kwargs):
        super().__init__(object_list, per_page, **kwargs)
        self.cap = cap
        self.more = False

    @cached_property
    def count(self) -> int:
        n, self.more = capped_count(self.object_list, self.cap)
        return n
