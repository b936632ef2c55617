"""Numerical equivalence of the decoupled model: split 0 is the HF model; cached == live at every split."""
from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    BertConfig,
    ElectraConfig,
    RobertaConfig,
)

from trainables.model.config import DecoupledConfig
from trainables.model.decoupled import DecoupledModel, PassageStates

Q, P = 8, 12


def tiny_config(family: str = "bert", layers: int = 3):
    common = dict(vocab_size=120, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=64)
    if family == "roberta":
        return RobertaConfig(**common, pad_token_id=1, type_vocab_size=1)
    if family == "electra":
        return ElectraConfig(**common, embedding_size=16)
    return BertConfig(**common)


def batch(seed: int = 0, b: int = 3):
    """Random segments with ragged lengths: question (b, Q), passage (b, P)."""
    g = torch.Generator().manual_seed(seed)
    q_ids = torch.randint(5, 120, (b, Q), generator=g)
    p_ids = torch.randint(5, 120, (b, P), generator=g)
    q_len, p_len = [Q, 5, 3][:b], [P, 9, 4][:b]
    q_mask = torch.tensor([[1] * n + [0] * (Q - n) for n in q_len])
    p_mask = torch.tensor([[1] * n + [0] * (P - n) for n in p_len])
    return q_ids, q_mask, p_ids, p_mask


def hf_reference(hf, q_ids, q_mask, p_ids, p_mask, i: int):
    """The HF model on the unpadded `[CLS] q [SEP] p [SEP]` of row i, with BERT pair token types."""
    lq, lp = int(q_mask[i].sum()), int(p_mask[i].sum())
    ids = torch.cat([q_ids[i, :lq], p_ids[i, :lp]])[None]
    types = torch.cat([torch.zeros(lq), torch.ones(lp)]).long()[None]
    if hf.config.type_vocab_size == 1:
        types = torch.zeros_like(types)
    return hf(input_ids=ids, token_type_ids=types), lq, lp


def joint_real(logits, i, lq, lp):
    """Our (B, Q+P) logits restricted to row i's real tokens, in HF order."""
    return torch.cat([logits[i, :lq], logits[i, Q:Q + lp]])


def build(family: str, task: str, split: int = 0, **kw):
    torch.manual_seed(0)
    cfg = tiny_config(family)
    auto = AutoModelForQuestionAnswering if task == "qa" else AutoModelForSequenceClassification
    hf = auto.from_config(cfg).eval()
    model = DecoupledModel(copy.deepcopy(hf), DecoupledConfig(split=split, task=task, max_question_len=Q, **kw)).eval()
    return hf, model


@pytest.mark.parametrize("family", ["bert", "roberta", "electra"])
def test_split0_qa_equals_hf(family):
    hf, model = build(family, "qa")
    inputs = batch()
    with torch.no_grad():
        out = model(*inputs)
        for i in range(3):
            ref, lq, lp = hf_reference(hf, *inputs, i)
            assert (joint_real(out.start_logits, i, lq, lp) - ref.start_logits[0]).abs().max() <= 1e-5
            assert (joint_real(out.end_logits, i, lq, lp) - ref.end_logits[0]).abs().max() <= 1e-5


@pytest.mark.parametrize("family", ["bert", "roberta", "electra"])
def test_split0_pair_equals_hf(family):
    hf, model = build(family, "pair")
    inputs = batch()
    with torch.no_grad():
        out = model(*inputs)
        for i in range(3):
            ref, _, _ = hf_reference(hf, *inputs, i)
            assert (out.logits[i] - ref.logits[0]).abs().max() <= 1e-5


def test_split0_hidden_states_and_attention_equal_hf():
    hf, model = build("bert", "qa")
    hf.config._attn_implementation = "eager"  # so HF returns attention probabilities to compare with
    q_ids, q_mask, p_ids, p_mask = batch(b=1)
    with torch.no_grad():
        out = model(q_ids, q_mask, p_ids, p_mask, output_hidden_states=True, output_attentions=True)
        ref = hf(input_ids=torch.cat([q_ids, p_ids], 1), token_type_ids=torch.cat([0 * q_ids, 0 * p_ids + 1], 1),
                 output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == model.num_layers + 1
    for ours, theirs in zip(out.hidden_states, ref.hidden_states):
        assert (ours - theirs).abs().max() <= 1e-5
    assert (out.last_attention - ref.attentions[-1]).abs().max() <= 1e-6


@pytest.mark.parametrize("ratio", [1, 2])
@pytest.mark.parametrize("task", ["qa", "pair"])
def test_cached_equals_live_at_every_split(tmp_path, task, ratio):
    inputs = batch(seed=1)
    q_ids, q_mask, p_ids, p_mask = inputs
    for split in range(0, 4):
        _, model = build("bert", task, split=split, compression_ratio=ratio)
        with torch.no_grad():
            live = model(*inputs)
            states = model.encode_passage(p_ids, p_mask)
            save_file({"values": states.values}, str(tmp_path / "cache.safetensors"))
            cached = PassageStates(load_file(str(tmp_path / "cache.safetensors"))["values"])
            out = model.forward_upper(model.encode_question(q_ids, q_mask), q_mask, cached, p_mask)
            valid = torch.cat([q_mask, p_mask], 1).bool() if task == "qa" else slice(None)  # pads are never read
            for name in ("start_logits", "end_logits") if task == "qa" else ("logits",):
                diff = (getattr(out, name) - getattr(live, name))[valid].abs().max().item()
                assert diff <= 1e-6, f"split {split}: cached {name} differs from live by {diff}"


@pytest.mark.parametrize("dtype,tol", [("fp16", 5e-2), ("int8", 2e-1)])
def test_quantized_cache_stays_close(dtype, tol):
    inputs = batch(seed=2)
    _, model = build("bert", "qa", split=2, compression_ratio=2, cache_dtype=dtype)
    q_ids, q_mask, p_ids, p_mask = inputs
    with torch.no_grad():
        live = model(*inputs)
        states = model.encode_passage(p_ids, p_mask)
        out = model.forward_upper(model.encode_question(q_ids, q_mask), q_mask, states, p_mask)
    assert states.values.dtype == {"fp16": torch.float16, "int8": torch.int8}[dtype]
    assert states.values.shape == (3, P, 16)
    assert (dtype == "int8") == (states.scale is not None)
    valid = torch.cat([q_mask, p_mask], 1).bool()
    assert (out.start_logits - live.start_logits)[valid].abs().max() <= tol


def test_passage_side_never_sees_the_question():
    _, model = build("bert", "qa", split=2)
    q_ids, q_mask, p_ids, p_mask = batch()
    with torch.no_grad():
        a = model(q_ids, q_mask, p_ids, p_mask, output_hidden_states=True).hidden_states
        b = model(torch.flip(q_ids, [0]), torch.flip(q_mask, [0]), p_ids, p_mask, output_hidden_states=True).hidden_states
    for layer in range(3):  # embeddings and the two lower layers: passage half unchanged
        assert torch.equal(a[layer][:, Q:], b[layer][:, Q:])
    assert not torch.allclose(a[3][:, Q:], b[3][:, Q:])  # the upper layer mixes question and passage


@pytest.mark.parametrize("positions,first", [("after_question", Q), ("restart", 0)])
def test_lower_part_is_hf_on_each_segment_alone(positions, first):
    hf, model = build("bert", "qa", split=2, passage_positions=positions)
    hf.config.output_hidden_states = True
    q_ids, q_mask, p_ids, p_mask = batch()
    with torch.no_grad():
        passage = model.encode_passage(p_ids, p_mask, store=False).values
        question = model.encode_question(q_ids, q_mask)
        ref_p = hf.base_model(input_ids=p_ids, attention_mask=p_mask, token_type_ids=torch.ones_like(p_ids),
                              position_ids=first + torch.arange(P).expand_as(p_ids)).hidden_states[2]
        ref_q = hf.base_model(input_ids=q_ids, attention_mask=q_mask, token_type_ids=torch.zeros_like(q_ids),
                              position_ids=torch.arange(Q).expand_as(q_ids)).hidden_states[2]
    assert (passage - ref_p)[p_mask.bool()].abs().max() <= 1e-5
    assert (question - ref_q)[q_mask.bool()].abs().max() <= 1e-5


def test_cross_embeddings_start_as_a_no_op():
    _, plain = build("bert", "pair", split=2)
    _, crossed = build("bert", "pair", split=2, cross_embeddings=True)
    crossed.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        assert torch.allclose(plain(*batch()).logits, crossed(*batch()).logits, atol=1e-6)
    assert crossed.cross_position.weight.abs().sum() == 0


def test_split_changes_the_function_but_not_the_weights():
    _, at0 = build("bert", "qa", split=0)
    _, at2 = build("bert", "qa", split=2)
    assert all(torch.equal(a, b) for a, b in zip(at0.state_dict().values(), at2.state_dict().values()))
    inputs = batch()
    with torch.no_grad():
        assert not torch.allclose(at0(*inputs).start_logits, at2(*inputs).start_logits)


@pytest.mark.parametrize("task", ["qa", "pair"])
def test_save_and_load_round_trip(tmp_path, task):
    _, model = build("bert", task, split=2, compression_ratio=4, cache_dtype="int8", cross_embeddings=True)
    with torch.no_grad():
        model.compressor.weight.add_(0.1)  # make sure trained extra layers are what gets reloaded
        model.cross_position.weight.add_(0.1)
    model.save_pretrained(tmp_path / "ckpt")
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert "model.safetensors" in files and "decoupled.safetensors" in files
    assert not any(f.endswith((".bin", ".pt", ".pth", ".pkl")) for f in files)
    loaded = DecoupledModel.from_pretrained(tmp_path / "ckpt").eval()
    assert loaded.config == model.config
    inputs = batch()
    with torch.no_grad():
        a, b = model(*inputs), loaded(*inputs)
    name = "start_logits" if task == "qa" else "logits"
    assert torch.equal(getattr(a, name), getattr(b, name))


def test_decoupled_checkpoint_is_a_plain_hf_checkpoint(tmp_path):
    hf, model = build("bert", "qa")
    model.save_pretrained(tmp_path / "ckpt")
    reloaded = AutoModelForQuestionAnswering.from_pretrained(tmp_path / "ckpt").eval()
    inputs = batch()
    with torch.no_grad():
        ref, lq, lp = hf_reference(reloaded, *inputs, 0)
        assert (joint_real(model(*inputs).start_logits, 0, lq, lp) - ref.start_logits[0]).abs().max() <= 1e-5


def test_from_pretrained_overrides_the_split(tmp_path):
    _, model = build("bert", "qa", split=0)
    model.save_pretrained(tmp_path / "teacher")
    student = DecoupledModel.from_pretrained(tmp_path / "teacher", split=2, compression_ratio=2)
    assert student.config.split == 2 and student.compressor is not None
    assert torch.equal(student.hf.qa_outputs.weight, model.hf.qa_outputs.weight)


def test_students_saved_before_passage_positions_keep_counting_from_zero(tmp_path):
    import json

    _, model = build("bert", "qa", split=2, passage_positions="restart")
    model.save_pretrained(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    del config["decoupled"]["passage_positions"]
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    assert DecoupledModel.from_pretrained(tmp_path / "old").config.passage_positions == "restart"
    assert DecoupledConfig().passage_positions == "after_question"


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"split": 4}, "split=4 is larger than the model's 3 layers"),
        ({"split": 1, "compression_ratio": 5}, "compression_ratio=5 does not divide the hidden size 32"),
        ({"split": -1}, "split=-1 is negative"),
        ({"cache_dtype": "int4"}, "cache_dtype='int4' is unknown"),
    ],
)
def test_bad_settings_fail_with_one_clear_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        build("bert", "qa", **kwargs)
    assert "\n" not in str(err.value)


def test_from_pretrained_without_config_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        DecoupledModel.from_pretrained(tmp_path)
