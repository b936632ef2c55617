import pytest
import torch
from transformers import BertConfig

from trainables.data.features import PairFeatures
from trainables.metrics.evaluation import evaluate_pairs
from trainables.metrics.pairs import pair_metrics
from trainables.model.config import DecoupledConfig
from trainables.model.decoupled import DecoupledModel


def test_binary_accuracy_and_positive_class_f1():
    # TP = 2 (rows 0, 4), predicted positive 3, actual positive 3 -> F1 = 2*2 / (3+3) = 2/3
    result = pair_metrics([1, 1, 0, 0, 1], [1, 0, 0, 1, 1], num_labels=2)
    assert result == {"accuracy": pytest.approx(60.0), "f1": pytest.approx(200 / 3), "examples": 5}


def test_binary_f1_is_about_class_one_not_class_zero():
    # Class 0 is perfect on its own rows, class 1 never predicted -> positive F1 0 while accuracy is 75
    result = pair_metrics([0, 0, 0, 0], [0, 0, 0, 1], num_labels=2)
    assert result["accuracy"] == pytest.approx(75.0)
    assert result["f1"] == 0.0


def test_three_class_macro_f1_by_hand():
    # class 0: TP 1, pred 2, gold 2 -> 1/2; class 1: TP 2, pred 3, gold 2 -> 4/5; class 2: TP 1, pred 1, gold 2 -> 2/3
    result = pair_metrics(torch.tensor([0, 1, 1, 1, 2, 0]), torch.tensor([0, 0, 1, 1, 2, 2]), num_labels=3)
    assert result["accuracy"] == pytest.approx(100 * 4 / 6)
    assert result["f1"] == pytest.approx(100 * (1 / 2 + 4 / 5 + 2 / 3) / 3)
    assert result["examples"] == 6


def test_macro_f1_averages_only_classes_that_occur():
    # class 2 neither predicted nor present: classes 0 (TP 1, pred 1, gold 2 -> 2/3) and 1 (TP 1, pred 2, gold 1 -> 2/3)
    result = pair_metrics([0, 1, 1], [0, 0, 1], num_labels=3)
    assert result["f1"] == pytest.approx(200 / 3)


@pytest.mark.parametrize(
    ("predictions", "labels", "num_labels", "message"),
    [
        ([0, 2], [0, 1], 2, r"predictions: entry 1 is 2, outside 0..1"),
        ([0, 1], [0, -1], 2, r"labels: entry 1 is -1"),
        ([0, 1, 1], [0, 1], 2, r"3 entries but labels has 2"),
        ([0.2, 0.9], [0, 1], 2, r"predictions: expected integer class indices"),
        ([], [], 2, r"no examples"),
        ([0], [0], 1, r"num_labels=1"),
    ],
)
def test_bad_input_names_the_field(predictions, labels, num_labels, message):
    with pytest.raises(ValueError, match=message):
        pair_metrics(predictions, labels, num_labels=num_labels)


def _tiny_hf_config() -> BertConfig:
    return BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=64)


def _tiny_pair_model(num_labels: int) -> DecoupledModel:
    torch.manual_seed(0)
    config = DecoupledConfig(split=1, max_question_len=6, task="pair", num_labels=num_labels)
    return DecoupledModel.from_hf_config(_tiny_hf_config(), config)


def _pair_features(n: int, num_labels: int):
    generator = torch.Generator().manual_seed(2)
    passage_mask = (torch.arange(8) < torch.randint(2, 9, (n, 1), generator=generator)).long()
    return PairFeatures(
        question_ids=torch.randint(1, 64, (n, 6), generator=generator),
        question_mask=torch.ones(n, 6, dtype=torch.long),
        passage_ids=torch.randint(1, 64, (n, 8), generator=generator) * passage_mask,
        passage_mask=passage_mask,
        labels=torch.randint(0, num_labels, (n,), generator=generator),
    )


def test_evaluate_pairs_predicts_the_argmax_of_every_row_in_order():
    model, features = _tiny_pair_model(3), _pair_features(7, 3)
    metrics, predictions = evaluate_pairs(model, features, batch_size=3)
    model.eval()
    with torch.inference_mode():
        logits = model(features.question_ids, features.question_mask, features.passage_ids,
                       features.passage_mask).logits
    assert predictions == logits.argmax(dim=-1).tolist()
    assert metrics == pair_metrics(predictions, features.labels, num_labels=3)
    assert evaluate_pairs(model, features, batch_size=7) == (metrics, predictions)


def test_evaluate_pairs_refuses_a_qa_model():
    qa_model = DecoupledModel.from_hf_config(_tiny_hf_config(), DecoupledConfig(split=1, max_question_len=6))
    with pytest.raises(ValueError, match="config.task is 'qa'"):
        evaluate_pairs(qa_model, _pair_features(2, 2))
