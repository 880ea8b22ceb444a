"""A sweep worker caps the batched solver's Numba threads (``solver_threads``), so that parallel
workers do not each start one thread per core."""

from __future__ import annotations

import numba
import pytest

from semcom import prepare
from semcom.link_task import LinkPointTask
from semcom.prepare import Calibration, split_test_set
from semcom.scenario import Scenario


def _task(solver_threads: int) -> LinkPointTask:
    s = Scenario.model_validate({
        "name": "threads", "data": {"dataset": "digits", "eval_images": 3},
        "model": {"name": "mlp", "n_features": 8}, "schemes": ["sep-capacity"],
    })  # fmt: skip
    eval_idx, calib_idx = split_test_set(len(prepare.test_split(s.reference_config())), 3, 8, 0)
    calibration = Calibration({}, {}, {}, {}, {}, eval_idx, calib_idx)
    return LinkPointTask(s, calibration, solver_threads=solver_threads)


@pytest.mark.usefixtures("one_thread")  # setup() sets torch's thread count
def test_setup_sets_the_solver_threads_and_zero_keeps_numbas_default() -> None:
    before = numba.get_num_threads()
    try:
        _task(1).setup()
        assert numba.get_num_threads() == 1
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        _task(0).setup()
        assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
        _task(10**6).setup()  # more than the cores: capped at Numba's maximum
        assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    finally:
        numba.set_num_threads(before)
