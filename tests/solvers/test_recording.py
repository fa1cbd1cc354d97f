import warnings

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from solvers.recording import Recorder

INDEX = torch.tensor([0, 2, 1, 2, 0])


def _step(x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A small iteration: gathers, a scatter-add, a softmax and a step size that depends on t."""
    gathered = x.index_select(0, INDEX) * t.sqrt()
    total = x.new_zeros(3).index_add_(0, INDEX, gathered)
    return x - 0.1 / t * torch.softmax(total, 0), total


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=3, max_size=3), st.integers(1, 50))
def test_a_replay_equals_the_call_bit_for_bit(values, steps):
    """The record made on the first call replays the same operations for every later input."""
    recorder = Recorder()
    x = y = torch.tensor(values, dtype=torch.float64)
    for k in range(1, steps + 1):
        t = torch.full((), k, dtype=torch.float64)
        x, total_recorded = recorder("step", _step, (x, t))
        y, total_called = _step(y, t)
        assert torch.equal(x, y) and torch.equal(total_recorded, total_called)
    assert "step" in recorder


def test_recording_warns_nothing_and_a_disabled_recorder_only_calls():
    x, t = torch.ones(3, dtype=torch.float64), torch.ones((), dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Recorder()("step", _step, (x, t))
    off = Recorder(enabled=False)
    assert not off.enabled
    result, _ = off("step", _step, (x, t))
    assert torch.equal(result, _step(x, t)[0]) and "step" not in off
