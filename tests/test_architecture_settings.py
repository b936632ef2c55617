"""A model's architecture settings have one definition, on its `DecoupledConfig` (issue 35, item 1), and round-trip
through what carries them: the checkpoint's config.json, and a passage cache's manifest (its settings and its model
identity), from which a reader loads the model back. Before, the tuple was written out in 8 places, and the search
spaces' copy left out `passage_positions` and `pair_head`."""
from __future__ import annotations

from dataclasses import fields

import pytest
import transformers

from orchestrator.cache_build import build_cache
from trainables.cache.format import check_compatible, model_identity, read_manifest
from trainables.cache.reader import PassageCache
from trainables.model.config import DecoupledConfig
from trainables.model.decoupled import DecoupledModel

from tests.test_cache import options
from tests.test_hostile_cache import without_ray

NOT_DEFAULT = [
    DecoupledConfig(split=2, compression_ratio=2, cache_dtype="int8", max_question_len=16,
                    passage_positions="restart", cross_embeddings=True),
    DecoupledConfig(split=1, splits=(1, 2), cache_dtype="fp16", max_question_len=12, cross_embeddings=True,
                    pair_head="segments", task="pair", num_labels=3),
]


def tiny(config: DecoupledConfig, tokenizer) -> DecoupledModel:
    hf_config = transformers.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=3,
                                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    model = DecoupledModel.from_hf_config(hf_config, config)
    model.tokenizer = tokenizer
    return model


def test_the_cases_leave_no_setting_at_its_default():
    default = DecoupledConfig()
    for f in fields(DecoupledConfig):
        assert any(getattr(c, f.name) != getattr(default, f.name) for c in NOT_DEFAULT), f.name


@pytest.mark.parametrize("config", NOT_DEFAULT, ids=["qa-compressed-int8", "pair-any-split"])
def test_settings_round_trip_through_a_checkpoint(config, tokenizer, tmp_path):
    tiny(config, tokenizer).save_pretrained(tmp_path / "model")
    loaded = DecoupledModel.from_pretrained(tmp_path / "model")
    assert loaded.config == config and loaded.config.to_dict() == config.to_dict()
    # A load that asks for the cache settings it was saved with changes nothing.
    assert DecoupledModel.from_pretrained(tmp_path / "model", **config.cache_settings()).config == config


def test_settings_round_trip_through_a_cache_manifest(tokenizer, tmp_path, monkeypatch):
    config = NOT_DEFAULT[0]
    tiny(config, tokenizer).save_pretrained(tmp_path / "model")
    without_ray(monkeypatch)
    build_cache(options(tmp_path / "model", tmp_path / "cache"))
    manifest = read_manifest(tmp_path / "cache")
    assert manifest.cache_settings() == config.cache_settings()
    assert DecoupledConfig(**manifest.model["decoupled"]) == config  # the model identity holds every setting
    # A reader loads the model the cache names, with the cache's settings, and the cache accepts it.
    model = DecoupledModel.from_pretrained(tmp_path / "model", **PassageCache(tmp_path / "cache").model_overrides())
    assert model.config == config
    check_compatible(manifest, tmp_path / "cache", model_identity(model))
