"""`runtime.tune_gc`: what `chronos serve` does to the collector once it is up."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from chronos_server.runtime import GC_THRESHOLDS, tune_gc


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_start_up_heap_is_frozen_and_young_collections_are_rarer(restore_gc: None) -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    tune_gc()
    assert gc.get_freeze_count() > 1000  # the modules and objects loaded so far
    assert gc.get_threshold() == GC_THRESHOLDS
    assert GC_THRESHOLDS[0] > 700  # CPython's default young-generation threshold
    assert gc.isenabled()  # cyclic garbage is still collected
