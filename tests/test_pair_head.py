"""`pair_head="segments"`: the pair classifier also reads SBERT's features of the two segments' mean final states,
through a linear map that starts at zero (the model starts as it was) and trains with the student."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from orchestrator.train import loop_config
from tests.test_decoupled_model import Q, batch, build
from tests.test_train import TINY, _tiny_checkpoint
from trainables.model.config import DecoupledConfig
from trainables.model.decoupled import DecoupledModel
from trainables.options import TrainOptions
from trainables.tasks.pair import segment_features
from trainables.training.loop import Worker


def test_segment_features_by_hand():
    states = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0], [5.0, -1.0], [7.0, 9.0]]])  # (1, 5, 2)
    mask = torch.tensor([[1, 1, 0, 1, 1]])  # question: positions 0-2 (one padded); passage: 3-4
    u, v = torch.tensor([2.0, 3.0]), torch.tensor([6.0, 4.0])
    expected = torch.cat([u, v, torch.tensor([4.0, 1.0]), torch.tensor([12.0, 12.0])])
    assert torch.equal(segment_features(states, mask, 3)[0], expected)
    empty = segment_features(states, torch.tensor([[1, 1, 0, 0, 0]]), 3)[0]  # a passage with no real token
    assert torch.equal(empty[2:4], torch.zeros(2))


def test_a_fresh_segments_head_is_the_cls_head_and_then_adds_its_map():
    _, cls = build("bert", "pair", split=2)
    _, both = build("bert", "pair", split=2, pair_head="segments")
    inputs = batch()
    with torch.no_grad():
        assert torch.equal(cls(*inputs).logits, both(*inputs).logits)  # zero map: the model is unchanged
        torch.manual_seed(1)
        both.pair_features.weight.normal_()
        both.pair_features.bias.normal_()
        out = both(*inputs, output_hidden_states=True)
        mask = torch.cat([inputs[1], inputs[3]], dim=1)
        expected = cls(*inputs).logits + both.pair_features(segment_features(out.hidden_states[-1], mask, Q))
    assert (out.logits - expected).abs().max() <= 1e-5
    assert not torch.allclose(out.logits, cls(*inputs).logits, atol=1e-3)


def test_the_map_is_saved_and_dropped_only_when_the_head_changes(tmp_path):
    _, model = build("bert", "pair", split=1, pair_head="segments")
    with torch.no_grad():
        model.pair_features.weight.fill_(0.25)
    model.save_pretrained(tmp_path / "student")
    again = DecoupledModel.from_pretrained(tmp_path / "student")
    assert again.config.pair_head == "segments" and torch.equal(again.pair_features.weight, model.pair_features.weight)
    assert DecoupledModel.from_pretrained(tmp_path / "student", pair_head="cls").pair_features is None


def test_bad_pair_head_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="pair_head='mean' is unknown"):
        TrainOptions(task="pair", pair_head="mean")
    with pytest.raises(ValueError, match="pair_head='segments' applies to task 'pair' only"):
        TrainOptions(task="qa", pair_head="segments")
    with pytest.raises(ValueError, match="pair_head"):
        DecoupledConfig(task="qa", pair_head="segments")


def test_a_student_trains_its_segments_map(tmp_path):
    tiny = _tiny_checkpoint(tmp_path / "tiny", hidden=32)
    rows = ["index\tsentence1\tsentence2\tlabel"]
    for i in range(40):
        rows.append(f"{i}\tThe cat number {i} sleeps.\tA cat {'sleeps' if i % 2 else 'runs'}.\t{i % 2}")
    data = tmp_path / "pairs.tsv"
    data.write_text("\n".join(rows) + "\n")
    teacher = tmp_path / "teacher"
    DecoupledModel.from_hf(tiny, DecoupledConfig(split=0, task="pair")).save_pretrained(teacher)
    options = TrainOptions(mode="student", model=tiny, teacher=str(teacher), task="pair", split=1, epochs=1,
                           pair_head="segments", data=str(data), eval_fraction=0.25,
                           **{k: v for k, v in TINY.items() if k not in ("data", "eval_articles")})
    saved = []  # the reported folder lives only during the report

    def report(metrics: dict, folder: str | None) -> None:
        saved.append(DecoupledModel.from_pretrained(Path(folder)))

    Worker(loop_config(options), 0, 1, torch.device("cpu")).run(None, report)
    trained = saved[-1]
    assert trained.config.pair_head == "segments"
    assert trained.pair_features.weight.abs().max() > 0  # it started at zero and learned
