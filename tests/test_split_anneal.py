"""`split_anneal`: the lower layers' attention across segments, scaled by ``lower_cross``, bridges the joint model
(1) and the decoupled one (0); the training loop lowers it linearly over the first part of phase 2."""
from __future__ import annotations

import math

import pytest
import torch

from orchestrator.train import loop_config
from tests.test_decoupled_model import P, Q, batch, build
from tests.test_train import TINY, _tiny_checkpoint
from trainables.model.config import DecoupledConfig
from trainables.model.decoupled import DecoupledModel, cross_segment_bias
from trainables.options import TrainOptions
from trainables.training.loop import Worker


def test_cross_segment_bias_by_hand():
    mask = torch.tensor([[1, 1, 0, 1, 0]])  # question of 3 positions (one padded), passage of 2 (one padded)
    bias = cross_segment_bias(mask, 3, 0.5, torch.float32)[0, 0]
    low, half = torch.finfo(torch.float32).min, math.log(0.5)
    expected = torch.tensor([[0, 0, low, half, low]] * 3 + [[half, half, low, 0, low]] * 2)
    assert torch.equal(bias, expected)
    closed = cross_segment_bias(mask, 3, 0.0, torch.float32)[0, 0]
    assert closed[0, 3] == low and closed[3, 0] == low and closed[3, 3] == 0


@pytest.mark.parametrize("task", ["qa", "pair"])
def test_vanishing_cross_attention_is_the_decoupled_model(task):
    _, model = build("bert", task, split=2)
    inputs = batch()
    with torch.no_grad():
        decoupled = model(*inputs, output_hidden_states=True)
        bridged = model(*inputs, output_hidden_states=True, lower_cross=1e-12)
    for a, b in zip(decoupled.hidden_states, bridged.hidden_states):
        assert (a - b).abs().max() <= 1e-5
    logits = (lambda o: o.logits) if task == "pair" else (lambda o: o.start_logits)
    assert (logits(decoupled) - logits(bridged)).abs().max() <= 1e-5


def test_full_cross_attention_is_the_joint_model_over_the_padded_layout():
    hf, model = build("bert", "qa", split=2)
    q_ids, q_mask, p_ids, p_mask = batch()
    with torch.no_grad():
        states = model(q_ids, q_mask, p_ids, p_mask, output_hidden_states=True, lower_cross=1.0).hidden_states
        ids, mask = torch.cat([q_ids, p_ids], dim=1), torch.cat([q_mask, p_mask], dim=1)
        types = torch.cat([torch.zeros_like(q_ids), torch.ones_like(p_ids)], dim=1)
        ref = hf.base_model(input_ids=ids, attention_mask=mask, token_type_ids=types,
                            position_ids=torch.arange(Q + P).expand_as(ids), output_hidden_states=True).hidden_states
        apart = model(q_ids, q_mask, p_ids, p_mask, output_hidden_states=True).hidden_states
    real = mask.bool()
    for layer in (1, 2):  # the lower layers: the joint model's, and not the decoupled one's
        assert (states[layer] - ref[layer])[real].abs().max() <= 1e-5
        assert not torch.allclose(states[layer][real], apart[layer][real], atol=1e-3)


def test_the_loop_fades_cross_attention_over_the_asked_part_of_training(tmp_path):
    tiny = _tiny_checkpoint(tmp_path / "tiny", layers=2, hidden=32)
    teacher = tmp_path / "teacher"
    DecoupledModel.from_hf(tiny, DecoupledConfig(split=0)).save_pretrained(teacher)
    options = TrainOptions(mode="student", model=tiny, teacher=str(teacher), split=1, epochs=2, split_anneal=0.5,
                           max_train_examples=16, max_eval_examples=8,
                           **{**TINY, "batch_size": 4, "data": "synthetic:articles=4", "eval_articles": 1})
    worker = Worker(loop_config(options), 0, 1, torch.device("cpu"))
    seen, task = [], worker.loss_step.task

    def record(*args, lower_cross=0.0, **kwargs):
        seen.append(lower_cross)
        return task(*args, lower_cross=lower_cross, **kwargs)

    recording = type("Recording", (), {"task": staticmethod(record), "shares": worker.loss_step.shares})()
    worker.loss_step = recording
    worker.loss_steps = {split: recording for split in worker.loss_steps}  # the loop takes each split's own
    reports = []
    worker.run(None, lambda metrics, folder: reports.append(metrics))
    n = len(seen) // 2  # steps an epoch: faded over the first epoch, then decoupled
    assert n > 1 and seen == pytest.approx([1 - i / n for i in range(n)] + [0.0] * n)
    assert [r["lower_cross"] for r in reports if "lower_cross" in r] == pytest.approx([1 / n, 0.0])  # last steps
    with pytest.raises(ValueError, match="split_anneal"):
        TrainOptions(split_anneal=1.5)
