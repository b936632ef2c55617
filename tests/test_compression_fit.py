"""The closed-form start of compression (`trainables.model.compression_fit`) against hand values, and a fresh
compressing student's loop fitting it to its own passage states."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from trainables.model.compression_fit import fit_projection_pair, principal_subspace
from trainables.model.decoupled import _init_projection_pair
from trainables.training.loop import reconstruction_error


def test_principal_subspace_hand_values():
    # Mean (1, 2, 3); spread 3 along x, 1 along y, none along z.
    states = torch.tensor([[4.0, 2, 3], [-2, 2, 3], [1, 3, 3], [1, 1, 3]])
    mean, basis = principal_subspace(states, 2)
    assert mean.tolist() == [1.0, 2.0, 3.0]
    assert basis.abs().tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]  # largest first; signs are free
    with pytest.raises(ValueError, match="width"):
        principal_subspace(states, 4)


def test_fit_keeps_the_largest_directions_hand_error():
    # ±(3, 0, 0) and ±(0, 1, 0): one dimension keeps x and loses y, 2 of ‖x‖² = 20.
    states = torch.tensor([[3.0, 0, 0], [-3, 0, 0], [0, 1, 0], [0, -1, 0]])
    compressor, decompressor = nn.Linear(3, 1), nn.Linear(1, 3)
    fit_projection_pair(compressor, decompressor, states)
    assert reconstruction_error(compressor, decompressor, states) == pytest.approx(0.1)
    rebuilt = decompressor(compressor(states)).detach()
    assert torch.allclose(rebuilt, torch.tensor([[3.0, 0, 0], [-3, 0, 0], [0, 0, 0], [0, 0, 0]]), atol=1e-6)


def test_states_on_an_offset_plane_are_rebuilt_exactly():
    torch.manual_seed(0)
    plane, _ = torch.linalg.qr(torch.randn(8, 2))  # two orthonormal directions in 8 dimensions
    offset = torch.full((8,), 5.0)
    states = offset + torch.randn(200, 2) @ plane.T
    compressor, decompressor = nn.Linear(8, 2), nn.Linear(2, 8)
    fit_projection_pair(compressor, decompressor, states)
    assert reconstruction_error(compressor, decompressor, states) < 1e-10
    assert torch.allclose(decompressor(compressor(states)), states, atol=1e-4)
    _init_projection_pair(compressor, decompressor)  # the random orthogonal start it replaces loses most of them
    assert reconstruction_error(compressor, decompressor, states) > 0.5


def test_a_fresh_compressing_student_starts_from_its_states_principal_subspace(tmp_path):
    from orchestrator.train import loop_config
    from tests.test_train import TINY, _tiny_checkpoint
    from trainables.model.decoupled import DecoupledModel
    from trainables.options import TrainOptions
    from trainables.training.loop import Worker
    from trainables.training.task_data import Rows

    tiny = _tiny_checkpoint(tmp_path / "tiny", layers=2, hidden=32)
    options = TrainOptions(mode="student", model=tiny, student_init="pretrained", kd_ratio=0.0, split=1,
                           compression_ratio=4, epochs=1, max_train_examples=24, max_eval_examples=8,
                           **{**TINY, "data": "synthetic:articles=4", "eval_articles": 1})
    worker = Worker(loop_config(options), 0, 1, torch.device("cpu"))
    worker.setup(None)
    student = worker.student
    fresh = DecoupledModel.from_hf(tiny, student.config)  # the same lower layers, the random orthogonal start
    rows = Rows(worker.data.train)
    batch = rows.tensors
    with torch.no_grad():
        states = fresh.encode_passage(batch["passage_ids"], batch["passage_mask"], compress=False, store=False)
        x = states.values[batch["passage_mask"].bool()]  # every training row: 24 < COMPRESSION_FIT_ROWS

        def error(model):
            return reconstruction_error(model.compressor, model.decompressor, x)

        assert error(student) == pytest.approx(worker.setup_metrics["compression_fit_error"], rel=1e-4)
        assert error(student) < error(fresh)
        mean, basis = principal_subspace(x, 8)
        assert torch.allclose(student.decompressor.bias, mean, atol=1e-5)
        assert torch.allclose(student.compressor.weight.abs(), basis.abs(), atol=1e-4)


def test_an_uncompressed_student_fits_nothing(tmp_path):
    from orchestrator.train import loop_config
    from tests.test_train import TINY, _tiny_checkpoint
    from trainables.options import TrainOptions
    from trainables.training.loop import Worker

    tiny = _tiny_checkpoint(tmp_path / "tiny", layers=2, hidden=32)
    options = TrainOptions(mode="student", model=tiny, student_init="pretrained", kd_ratio=0.0, split=1, epochs=1,
                           max_train_examples=8, max_eval_examples=4,
                           **{**TINY, "data": "synthetic:articles=4", "eval_articles": 1})
    worker = Worker(loop_config(options), 0, 1, torch.device("cpu"))
    worker.setup(None)
    assert "compression_fit_error" not in worker.setup_metrics
