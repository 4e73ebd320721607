"""Every registered regime says whom to cite, as sentence-transformers' losses do: the model cards print it."""

from __future__ import annotations

import re

import pytest

from regimes import REGISTRY


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_regime_has_a_bibtex_citation(name):
    citation = REGISTRY[name].citation.strip()
    assert re.match(r"^@\w+\{[\w:-]+,", citation), citation[:80]
    for field in ("title", "author", "year"):
        assert re.search(rf"^\s*{field}\s*=\s*\{{.+", citation, re.MULTILINE), f"{name}: no {field}"
    assert citation.count("{") == citation.count("}"), f"{name}: unbalanced braces"


def test_the_citations_name_the_papers_of_the_regimes():
    """Self-distillation: Gienapp et al. (arXiv 2407.21515); Margin-MSE: Hofstätter et al. (2010.02666);
    TAS-Balanced: Hofstätter et al. (2104.06967)."""
    expected = {
        "self-distillation": "2407.21515",
        "teacher-distillation": "2010.02666",
        "batch-sampling": "2104.06967",
    }
    for name, arxiv in expected.items():
        assert arxiv in REGISTRY[name].citation, name
