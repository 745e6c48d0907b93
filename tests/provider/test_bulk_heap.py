"""The collector settings the bulk steps run under (operators/heap.py): set while a step runs, undone after."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

from airflow_provider_fbmkto.operators import steps
from airflow_provider_fbmkto.operators.heap import YOUNG_THRESHOLD, bulk_heap


@pytest.fixture(autouse=True)
def _default_collector() -> Any:
    before = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_sets_the_collector_for_bulk_work_and_restores_it() -> None:
    gc.set_threshold(700, 10, 10)
    existing = [object() for _ in range(10)]  # noqa: F841 - alive across the block, so frozen by it
    with bulk_heap():
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_nested_use_keeps_the_settings_until_the_outermost_ends() -> None:
    gc.set_threshold(700, 10, 10)
    with bulk_heap():
        with bulk_heap():
            pass
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_restores_after_an_error_and_keeps_a_higher_threshold() -> None:
    gc.set_threshold(YOUNG_THRESHOLD * 2, 5, 5)
    seen: list[tuple[int, int, int]] = []

    def fail() -> None:
        with bulk_heap():
            seen.append(gc.get_threshold())
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail()
    assert seen == [(YOUNG_THRESHOLD * 2, 5, 5)]  # never lowered
    assert gc.get_threshold() == (YOUNG_THRESHOLD * 2, 5, 5)
    assert gc.get_freeze_count() == 0


def test_leaves_someone_elses_freeze_in_place() -> None:
    gc.freeze()  # as a forking executor does before it forks its workers
    frozen = gc.get_freeze_count()
    with bulk_heap():
        pass
    assert gc.get_freeze_count() >= frozen


class _Node:
    ref: Any = None


def test_cyclic_garbage_is_still_collected_inside() -> None:
    with bulk_heap():
        node = _Node()
        node.ref = node  # a cycle: reference counting alone never frees it
        alive = weakref.ref(node)
        del node
        kept = [[] for _ in range(YOUNG_THRESHOLD * 3)]  # net allocations past the young threshold
        assert alive() is None, "no young collection ran while the step allocated"
        del kept


class _Seen(Exception):
    pass


def _capture(seen: list[tuple[int, int, int]]) -> Any:
    def run_context(*_: Any, **__: Any) -> Any:
        seen.append(gc.get_threshold())
        raise _Seen

    return run_context


@pytest.mark.parametrize(
    ("operator", "method"),
    [
        (steps.FreshBooksExtractRecordsOperator, "execute"),
        (steps.FbmktoMapRecordsOperator, "execute"),
        (steps.MarketoLoadRecordsOperator, "execute"),
        (steps.MarketoReconcileLeadsOperator, "execute"),
        (steps.MarketoReconcileLeadsOperator, "execute_complete"),
    ],
)
def test_each_bulk_step_runs_its_body_under_the_bulk_settings(operator: type, method: str) -> None:
    """The step's first act (resolving its run) already sees the bulk settings; after the step, the defaults."""
    gc.set_threshold(700, 10, 10)
    seen: list[tuple[int, int, int]] = []
    step = operator(task_id="step", account="acme", config_path="unused.yaml")
    step.run_context = step.new_run_context = _capture(seen)
    args: tuple[Any, ...] = ({},) if method == "execute" else ({}, {"status": "success"})
    with pytest.raises(_Seen):
        getattr(step, method)(*args)
    assert seen == [(YOUNG_THRESHOLD, 10, 10)]
    assert gc.get_threshold() == (700, 10, 10)
