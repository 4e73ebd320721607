"""A training example: a query with one relevant and one non-relevant document, by id."""

from __future__ import annotations

from typing import NamedTuple


class Triple(NamedTuple):
    """(query, positive, negative) by id; texts are looked up in the collection."""

    query_id: str
    positive_id: str
    negative_id: str
