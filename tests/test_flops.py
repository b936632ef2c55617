import pytest
from transformers import BertConfig

from trainables.speed.flops import (
    ModelShape,
    decoupled_flops,
    encoder_layer_flops,
    full_model_flops,
    speedup_bound,
)

# L=2, d=4, ff=8: small enough to count by hand.
HAND = ModelShape(layers=2, hidden=4, heads=2, intermediate=8, vocab=10)


def test_encoder_layer_flops_matches_hand_count():
    # n=5, d=4, ff=8: projections 4·2·5·4·4 = 640, feed-forward 2·2·5·4·8 = 640, attention 2·2·5·5·4 = 400.
    assert encoder_layer_flops(5, 4, 8, 2) == 640 + 640 + 400


def test_full_and_decoupled_flops_match_hand_count():
    # Q=2, P=3, joint 5; batch 2; split 1; ratio 2 (d/r = 2).
    layer_q = 4 * 2 * 2 * 16 + 2 * 2 * 2 * 4 * 8 + 2 * 2 * 2 * 2 * 4  # 256 + 256 + 64 = 576
    layer_p = 4 * 2 * 3 * 16 + 2 * 2 * 3 * 4 * 8 + 2 * 2 * 3 * 3 * 4  # 384 + 384 + 144 = 912
    layer_joint = 1680
    projection = 2 * 3 * 4 * 2  # one 4→2 (or 2→4) linear on 3 passage tokens = 48
    assert full_model_flops(HAND, batch=2, q_len=2, p_len=3) == 2 * 2 * layer_joint  # 6720
    live = decoupled_flops(HAND, split=1, batch=2, q_len=2, p_len=3, ratio=2, cached=False)
    cached = decoupled_flops(HAND, split=1, batch=2, q_len=2, p_len=3, ratio=2, cached=True)
    assert live == 2 * (layer_q + layer_p + 2 * projection + layer_joint)  # 6528
    assert cached == 2 * (layer_q + projection + layer_joint)  # 4608
    assert speedup_bound(HAND, 1, 2, 3, ratio=2, cached=True) == pytest.approx(6720 / 4608)


def test_split_zero_without_compression_has_bound_one():
    shape = ModelShape.preset("bert-base")
    assert speedup_bound(shape, 0, 32, 320, ratio=1, cached=False) == 1.0
    assert speedup_bound(shape, 0, 32, 320, ratio=1, cached=True) == 1.0


def test_compression_costs_flops_on_the_live_path_at_split_zero():
    shape = ModelShape.preset("bert-base")
    assert speedup_bound(shape, 0, 32, 320, ratio=4, cached=False) < 1.0


@pytest.mark.parametrize("cached", [False, True])
def test_bound_increases_with_split(cached):
    shape = ModelShape.preset("bert-base")
    bounds = [speedup_bound(shape, k, 32, 320, ratio=2, cached=cached) for k in range(shape.layers + 1)]
    assert all(a < b for a, b in zip(bounds, bounds[1:]))


def test_cached_bound_at_last_layer_is_joint_over_question_cost():
    shape = ModelShape.preset("minilm-l6")
    full = encoder_layer_flops(352, 384, 1536, 12)
    question_only = encoder_layer_flops(32, 384, 1536, 12)
    assert speedup_bound(shape, 6, 32, 320, cached=True) == pytest.approx(full / question_only)


def test_shape_from_hf_config():
    cfg = BertConfig(vocab_size=99, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128)
    assert ModelShape.from_hf_config(cfg) == ModelShape(layers=3, hidden=64, heads=4, intermediate=128, vocab=99)


def test_presets():
    assert ModelShape.preset("bert-large") == ModelShape(layers=24, hidden=1024, heads=16, intermediate=4096)
    with pytest.raises(ValueError, match="unknown shape 'bert-huge'"):
        ModelShape.preset("bert-huge")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(split=3), r"split must be within \[0, 2\]"),
        (dict(split=1, ratio=3), "ratio must be >= 1 and divide hidden=4"),
    ],
)
def test_decoupled_flops_rejects_bad_split_and_ratio(kwargs, message):
    with pytest.raises(ValueError, match=message):
        decoupled_flops(HAND, batch=1, q_len=2, p_len=3, **kwargs)


def test_shape_validation_names_the_field():
    with pytest.raises(ValueError, match="ModelShape.heads must divide hidden=10"):
        ModelShape(layers=1, hidden=10, heads=3, intermediate=8)
