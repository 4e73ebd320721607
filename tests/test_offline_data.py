"""The README's test command as a new user runs it: nothing exported, ``../shared`` beside the checkout, no network.

The session's conftest seeds ``IR_DATASETS_HOME`` before ir_datasets is imported; these tests check that SciFact
and Vaswani then load on ir_datasets' own code path without any download, in this process and in a fresh pytest
started with nothing set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, SHARED_COPY, holds_data
from tests.no_network import block_network


def test_scifact_and_vaswani_load_offline(ir_datasets_home):
    import ir_datasets

    assert Path(os.environ["IR_DATASETS_HOME"]) == ir_datasets_home
    if os.environ.get("EXPECT_SEEDED_COPY"):  # the fresh pytest below: the copy of ../shared made at start-up
        assert ir_datasets_home.name.startswith("ir_datasets-tests-") and ir_datasets_home != SHARED_COPY
    test = ir_datasets.load("beir/scifact/test")
    assert len({qrel.query_id for qrel in test.qrels_iter()}) == 300
    assert test.docs_count() == 5183
    npl = ir_datasets.load("vaswani")
    assert sum(1 for _ in npl.docs_iter()) == 11429
    assert sum(1 for _ in npl.queries_iter()) == 93
    assert sum(1 for _ in npl.qrels_iter()) == 2083


def test_fresh_pytest_with_nothing_exported_finds_the_data_without_network(tmp_path):
    """`python -m pytest` with IR_DATASETS_HOME and HF_HUB_OFFLINE unset, an empty home folder and every connection
    refused: the in-process loads above still pass, so the data came from ../shared and nothing was downloaded."""
    if not holds_data(SHARED_COPY):
        pytest.skip(f"{SHARED_COPY} is not beside this checkout, as it is in CI")
    env = {k: v for k, v in os.environ.items() if k not in {"IR_DATASETS_HOME", "HF_HUB_OFFLINE"}}
    env.update(
        HOME=str(tmp_path / "home"),  # ~/.ir_datasets is empty: only the seeded copy can serve the loads
        PYTHONPATH=str(block_network(tmp_path / "no-network")),
        EXPECT_SEEDED_COPY="1",
    )
    test = f"{Path(__file__).relative_to(REPO)}::test_scifact_and_vaswani_load_offline"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout and "skipped" not in result.stdout


def test_vaswani_is_an_evaluation_set_of_the_toolkit(ir_datasets_home):
    """`--eval vaswani` (reproduce's out-of-domain default) through the toolkit's own loading: its topics, judgments
    and documents (ir_datasets' vaswani declares docs_namespace without self; the id is its corpus key)."""
    from benchmark.data.collections import evaluation_collection
    from benchmark.evaluation.systems import topics_and_qrels

    collection = evaluation_collection("vaswani")
    topics, qrels = topics_and_qrels(collection, None)
    assert collection.corpus_key == "vaswani"
    assert len(topics) == 93 and len(qrels) == 2083
    assert collection.document_texts(["1"])[0].startswith("compact memories have flexible capacities")
