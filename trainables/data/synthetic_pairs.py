"""A seeded synthetic sentence-pair set (claim verification) that only a model relating the two sentences can solve.

Each pair is a claim and a short passage about made-up people (the names of `trainables.data.synthetic`, unique across
the set, so no pre-trained model knows them). The classes are balanced, in random order, and neither sentence
alone says anything about the label. Surface forms vary (three fact templates per relation, six relations), so
wording does not give it away either.

``people=1`` (the default; a one-epoch teacher gets it right): the passage is one statement, and a refuted claim
names a value the passage does not state; comparing the two values is enough, and needs both sentences::

    sentence1: "Dorvela was born in Lisbon."     sentence2: "The hometown of Dorvela is Oslo."     -> not_entailment

``people=2`` or more (harder): the passage states one relation for that many people, each with a different value;
a claim names one of them and either that person's value (``entailment``) or another person's value from the same
passage (``not_entailment``), so every word of the claim is in the passage either way and only binding the claim's
name and value to the passage's statements tells them apart::

    sentence1: "Dorvela was born in Lisbon."
    sentence2: "The hometown of Kamtor is Lisbon. Dorvela comes from Oslo."     -> not_entailment

For a decoupled model this is the whole story of the split in one task: the pair head reads [CLS], in the claim's
segment, so every bit of the passage it uses must cross in the joint upper layers. A student with some joint
layers can learn it; one split at k = L never sees the passage and scores the majority class (50 %).
"""
from __future__ import annotations

import random

from trainables.data.features import PairExample
from trainables.data.synthetic import RELATIONS, new_word

LABEL_NAMES = ("entailment", "not_entailment")
"""The GLUE RTE/QNLI label set, in its class order: 0 = the passage states the claim."""


def synthetic_pairs(*, seed: int = 0, pairs: int = 2000, people: int = 1) -> list[PairExample]:
    """Generate ``pairs`` claim/passage examples, half of each class (pure, seeded)."""
    most = min(len(r.values) for r in RELATIONS)
    if pairs < 2:
        raise ValueError(f"synthetic pairs: pairs = {pairs}; use at least 2")
    if not 1 <= people < most:
        raise ValueError(f"synthetic pairs: people = {people}; use 1 to {most - 1}")
    rng = random.Random(seed)
    used: set[str] = set()
    labels = [n % 2 for n in range(pairs)]
    rng.shuffle(labels)
    examples = []
    for n, label in enumerate(labels):
        relation = rng.choice(RELATIONS)
        names = [new_word(rng, used) for _ in range(people)]
        values = rng.sample(relation.values, people)
        statements = [rng.choice(relation.facts).format(e=name, v=value) for name, value in zip(names, values)]
        rng.shuffle(statements)
        claimed = rng.randrange(people)
        if label == 0:
            value = values[claimed]
        elif people > 1:  # another person's value from the passage
            value = values[(claimed + rng.randrange(1, people)) % people]
        else:  # a value the passage does not state
            value = rng.choice([v for v in relation.values if v != values[0]])
        claim = rng.choice(relation.facts).format(e=names[claimed], v=value)
        examples.append(PairExample(id=f"synpair{seed}-{n:05d}", sentence1=claim, sentence2=" ".join(statements),
                                    label=label))
    return examples
