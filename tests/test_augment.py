"""Token masking of training rows: which tokens may change, how often, and that teacher and student see one input."""
from __future__ import annotations

import pytest
import torch

from orchestrator.train import loop_config
from tests.test_train import TINY, _tiny_checkpoint
from trainables.model.config import DecoupledConfig
from trainables.model.decoupled import DecoupledModel
from trainables.options import TrainOptions
from trainables.training.augment import masked_batch, mask_tokens
from trainables.training.loop import Worker

CLS, SEP, PAD, MASK = 101, 102, 0, 103
KEEP = torch.tensor([PAD, CLS, SEP, MASK])


def test_only_real_non_special_tokens_are_masked():
    ids = torch.tensor([[CLS, 5, 6, 7, SEP, PAD], [CLS, 8, SEP, PAD, PAD, PAD]])
    mask = (ids != PAD).long()
    everything = mask_tokens(ids, mask, 0.999999, MASK, KEEP)
    assert everything.tolist() == [[CLS, MASK, MASK, MASK, SEP, PAD], [CLS, MASK, SEP, PAD, PAD, PAD]]
    assert mask_tokens(ids, mask, 0.0, MASK, KEEP) is ids
    # a real token the attention mask hides stays too (padding written with another id)
    assert mask_tokens(ids, torch.zeros_like(ids), 0.999999, MASK, KEEP).equal(ids)


def test_masking_rate_and_fresh_draws():
    ids = torch.randint(1000, 2000, (64, 128))
    mask = torch.ones_like(ids)
    gen = torch.Generator().manual_seed(0)
    first, second = (mask_tokens(ids, mask, 0.15, MASK, KEEP, gen) for _ in range(2))
    for masked in (first, second):
        assert (masked == MASK).float().mean().item() == pytest.approx(0.15, abs=0.01)
        assert torch.equal(masked[masked != MASK], ids[masked != MASK])
    assert not torch.equal(first, second)  # every step its own draw


def test_masked_batch_touches_only_the_ids():
    batch = {"question_ids": torch.tensor([[CLS, 5, SEP]]), "question_mask": torch.ones(1, 3, dtype=torch.long),
             "passage_ids": torch.tensor([[6, 7, SEP]]), "passage_mask": torch.ones(1, 3, dtype=torch.long),
             "labels": torch.tensor([1]), "index": torch.tensor([4])}
    out = masked_batch(batch, 0.999999, MASK, KEEP)
    assert out["question_ids"].tolist() == [[CLS, MASK, SEP]] and out["passage_ids"].tolist() == [[MASK, MASK, SEP]]
    assert all(out[k] is batch[k] for k in ("question_mask", "passage_mask", "labels", "index"))


def test_teacher_and_student_see_the_same_masked_rows(tmp_path):
    """With mask_augment the teacher's logits come live from the masked rows the student trains on, never cached."""
    tiny = _tiny_checkpoint(tmp_path / "tiny", layers=2, hidden=32)
    teacher = tmp_path / "teacher"
    DecoupledModel.from_hf(tiny, DecoupledConfig(split=0)).save_pretrained(teacher)
    options = TrainOptions(mode="student", model=tiny, teacher=str(teacher), split=1, kd_ratio=1.0, epochs=1,
                           mask_augment=0.3, max_train_examples=16, max_eval_examples=8,
                           teacher_logits_cache=str(tmp_path / "cache"),
                           **{**TINY, "data": "synthetic:articles=4", "eval_articles": 1})
    cfg = loop_config(options)
    assert not cfg.caches_teacher_logits and loop_config(options.replace(mask_augment=0)).caches_teacher_logits
    worker = Worker(cfg, 0, 1, torch.device("cpu"))
    seen = {"teacher": [], "student": []}
    teacher_forward = Worker._teacher_forward

    def record_teacher(model, batch, hidden, attention):
        seen["teacher"].append(batch["passage_ids"].clone())
        return teacher_forward(model, batch, hidden, attention)

    worker._teacher_forward = record_teacher
    step = worker.train_step

    def record_student(batch):
        seen["student"].append(batch["passage_ids"].clone())
        return step(batch)

    worker.train_step = record_student
    worker.run(None, lambda metrics, folder: None)
    assert worker.teacher_logits is None and not list((tmp_path / "cache").glob("*.pt"))
    assert len(seen["student"]) == len(seen["teacher"]) > 0
    for student, teacher_ids in zip(seen["student"], seen["teacher"]):
        assert torch.equal(student, teacher_ids) and (student == worker.student.tokenizer.mask_token_id).any()


def test_mask_augment_out_of_range_names_the_field():
    with pytest.raises(ValueError, match="mask_augment"):
        TrainOptions(mask_augment=1.0)
