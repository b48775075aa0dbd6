"""Plain in/out shapes of the scoring pages."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Fixed columns of the results table that can be sorted; a construct column is "c:<code>".
SORT_COLUMNS = ("name", "nip", "job", "unit", "total", "jpm", "category", "band", "box")
_CONSTRUCT = re.compile(r"^c:[a-z0-9_.]{1,100}$")


@dataclass(frozen=True)
class ResultsQuery:
    """How the results table is ordered. Unknown values fall back to the default order
    instead of failing: the link may come from an old bookmark."""

    sort: str = "nip"
    descending: bool = False

    @classmethod
    def parse(cls, sort: str, direction: str) -> ResultsQuery:
        if sort not in SORT_COLUMNS and not _CONSTRUCT.match(sort):
            sort = "nip"
        return cls(sort, direction == "desc")

    def link(self, column: str) -> str:
        """The query string that sorts by ``column`` (again: the other direction)."""
        descending = not self.descending if column == self.sort else column in (
            "total", "jpm", "box") or column.startswith("c:")
        return f"?sort={column}&dir={'desc' if descending else 'asc'}"

    def here(self) -> str:
        """The query string of this order (to switch the view and keep the order)."""
        return f"?sort={self.sort}&dir={'desc' if self.descending else 'asc'}"

    def aria(self, column: str) -> str:
        if column != self.sort:
            return "none"
        return "descending" if self.descending else "ascending"
