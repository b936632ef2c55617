"""Extractive span QA (SQuAD): start/end logits over the joint sequence, answers decoded as spans of the passage,
scored by exact match and F1."""
from __future__ import annotations

from typing import Any

from trainables.data.errors import LoadReport
from trainables.data.suffixes import task_of_file
from trainables.tasks.base import Task, TaskData, check_usable


class QATask(Task):
    name = "qa"
    metric = "f1"
    metric_label = "F1"
    hf_kind = "question-answering"
    head_prefix = "qa_outputs."
    data_settings = ("task", "max_passage_len", "doc_stride")
    unused_options = ("eval_fraction",)
    has_classes = False
    extracts_answers = True
    smoke_question_len = 32  # short questions need no 64 tokens
    smoke_passage_len = 160  # one window holds a synthetic paragraph

    def auto_class(self) -> type:
        from transformers import AutoModelForQuestionAnswering

        return AutoModelForQuestionAnswering

    def head_kwargs(self, num_labels: int) -> dict[str, Any]:
        return {}

    def head(self, model, sequence, mask, question_len: int) -> dict[str, Any]:
        start, end = model.hf.qa_outputs(sequence).split(1, dim=-1)  # (B, T, 1) each
        return {"start_logits": start.squeeze(-1).contiguous(), "end_logits": end.squeeze(-1).contiguous()}

    def logit_shape(self, joint_len: int, num_labels: int) -> tuple[int, ...]:
        return (2, joint_len)

    def recognises(self, data: str) -> bool:
        return task_of_file(data) == self.name or data.startswith("synthetic")

    def check_options(self, o) -> None:
        if o.doc_stride >= o.max_passage_len - 1:
            raise ValueError(
                f"doc_stride={o.doc_stride} is the overlap between windows; use 0 to {o.max_passage_len - 2} "
                f"(below max_passage_len - 1 = {o.max_passage_len - 1})"
            )
        if o.eval_data is None and o.eval_articles < 1:
            raise ValueError("eval_articles=0 leaves nothing to evaluate on; hold out >= 1 article or set eval_data")

    def check_labels(self, labels: tuple[str, ...], fix: str) -> None:
        if labels:
            raise ValueError(f"labels: QA data has no labels; {fix}")

    def check_data(self, o) -> tuple[str, ...]:
        from trainables.data.squad import article_count, load_squad

        examples, report = load_squad(o.data, split="train")
        check_usable("data", examples, report)
        if o.eval_data is not None:
            held_out, eval_report = load_squad(o.eval_data, split="validation")
            check_usable("eval_data", held_out, eval_report)
            return ()
        articles = article_count(examples)
        if o.eval_articles >= articles:
            raise ValueError(f"eval_articles={o.eval_articles} but data {o.data!r} has {articles} article(s); hold "
                             f"out 1 to {articles - 1} so the rest trains, or pass eval_data")
        return ()

    def load_data(self, spec, tokenizer) -> TaskData:
        from trainables.data.squad import load_squad, split_by_article

        examples, report = load_squad(spec.data, split="train")
        reports = [report]
        if spec.eval_data is None:
            train, held_out = split_by_article(examples, eval_articles=spec.eval_articles, seed=spec.seed)
        else:
            train = examples
            held_out, held_out_report = load_squad(spec.eval_data, split="validation")
            reports.append(held_out_report)
        cut = dict(max_question_len=spec.max_question_len, max_passage_len=spec.max_passage_len,
                   doc_stride=spec.doc_stride, label_names=())
        train_features, train_reports = self.features(train[: spec.max_train_examples], tokenizer, **cut,
                                                      source="train")
        eval_features, eval_reports = self.features(held_out[: spec.max_eval_examples], tokenizer, **cut,
                                                    source="eval")
        return TaskData(train_features, eval_features, 2, (), reports + train_reports + eval_reports)

    def load_examples(self, source: str, *, split: str, limit: int | None,
                      labels: tuple[str, ...] | None) -> tuple[list, tuple[str, ...], LoadReport]:
        from trainables.data.squad import load_squad

        examples, report = load_squad(source, split=split, limit=limit)
        return examples, (), report

    def features(self, examples: list, tokenizer, *, max_question_len: int, max_passage_len: int,
                 doc_stride: int | None, label_names: tuple[str, ...], source: str) -> tuple[Any, list[LoadReport]]:
        from trainables.data.qa_features import build_qa_features

        features, report = build_qa_features(examples, tokenizer, max_question_len=max_question_len,
                                             max_passage_len=max_passage_len, doc_stride=doc_stride, source=source)
        return features, [report]

    def evaluate(self, model, features, label_names: tuple[str, ...], *, batch_size: int, device,
                 version_2: bool | None = None, passage_states=None, progress=None) -> tuple[dict, dict[str, str]]:
        from trainables.metrics.evaluation import evaluate_qa

        if version_2 is None:
            version_2 = any(ex.is_impossible for ex in features.examples)
        return evaluate_qa(model, features, batch_size=batch_size, version_2=version_2, device=device,
                           passage_states=passage_states, progress=progress)
