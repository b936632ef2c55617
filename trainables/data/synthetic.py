"""A seeded synthetic extractive-QA set that only a model relating question and passage can solve.

Design. Every paragraph introduces a few made-up people (names built from random syllables, unique across the
whole set, so no pre-trained model knows them) and states one fact per person for each of three relation types
drawn from six (birthplace city, profession, birth year, favourite colour, employer, instrument). Because *every*
person in a paragraph gets a fact of *every* chosen relation, each question's answer has same-type distractors
in the same paragraph: "Which instrument does Dorvela play?" has as many instrument names in the paragraph as there
are people. A reader that spots the answer type but ignores whom the question asks about picks one of them at
random and scores 1/entities exact match (25 % with the default four people); only attending from the question's
name to its fact beats that. Facts use several surface templates per relation, questions several templates per
relation, and fact order is shuffled, so neither wording nor position gives the answer away. Each value occurs
exactly once in its paragraph (checked; a paragraph that breaks this is redrawn), so ``answer_start`` is
unambiguous. Paragraphs are short (about 90-125 word pieces with the defaults) so a tiny model learns the task in
minutes. Articles have distinct titles, so ``split_by_article`` gives disjoint train and eval parts. The same
arguments give the same examples, ids and offsets on any machine.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from trainables.data.features import QAExample

RELATIONS_PER_PARAGRAPH = 3
_MAX_REDRAWS = 100


@dataclass(frozen=True)
class Relation:
    """One relation type: the values an answer can take and the surface forms of facts and questions."""

    name: str
    """Short name, e.g. ``birthplace``."""
    values: tuple[str, ...]
    """Every possible answer; a paragraph samples distinct values, so its size caps ``entities_per_paragraph``."""
    facts: tuple[str, ...]
    """Sentence templates with ``{e}`` (the person) and exactly one ``{v}`` (the value)."""
    questions: tuple[str, ...]
    """Question templates with ``{e}``."""


RELATIONS: tuple[Relation, ...] = (
    Relation(
        "birthplace",
        ("Lisbon", "Oslo", "Nairobi", "Lima", "Osaka", "Dublin", "Quito", "Hanoi",
         "Tunis", "Bergen", "Porto", "Seville", "Krakow", "Tallinn", "Perth", "Denver"),
        ("{e} was born in {v}.", "{e} comes from {v}.", "The hometown of {e} is {v}."),
        ("Where was {e} born?", "Which city does {e} come from?", "What is the hometown of {e}?"),
    ),
    Relation(
        "profession",
        ("baker", "chemist", "dentist", "farmer", "geologist", "journalist", "lawyer", "nurse",
         "pilot", "sculptor", "teacher", "translator", "welder", "plumber", "surgeon", "carpenter"),
        ("{e} works as a {v}.", "By profession, {e} is a {v}.", "{e} earns a living as a {v}."),
        ("What does {e} do for a living?", "What is the profession of {e}?", "What job does {e} have?"),
    ),
    Relation(
        "birth_year",
        tuple(str(year) for year in range(1931, 2003, 3)),
        ("{e} was born in the year {v}.", "{e} came into the world in {v}.", "The birth year of {e} is {v}."),
        ("In which year was {e} born?", "What is the birth year of {e}?", "When was {e} born?"),
    ),
    Relation(
        "colour",
        ("amber", "azure", "beige", "crimson", "emerald", "indigo", "ivory", "lavender",
         "magenta", "maroon", "olive", "scarlet", "teal", "turquoise", "violet", "ochre"),
        ("The favourite colour of {e} is {v}.", "{e} likes {v} more than any other colour.", "{e} always wears {v}."),
        ("What is the favourite colour of {e}?", "Which colour does {e} like best?", "What colour does {e} wear?"),
    ),
    Relation(
        "employer",
        ("Quillon Foods", "Marrow Systems", "Tessaly Motors", "Brightwater Labs", "Okafor Textiles",
         "Pellham Shipping", "Nordvik Energy", "Carraway Press", "Zentor Robotics", "Halden Mining",
         "Vesper Airlines", "Lumen Pharma", "Ashgrove Bank", "Kestrel Games", "Orrin Logistics", "Talbot Insurance"),
        ("{e} is employed by {v}.", "{e} works for {v}.", "The employer of {e} is {v}."),
        ("Who employs {e}?", "Which company does {e} work for?", "Who is the employer of {e}?"),
    ),
    Relation(
        "instrument",
        ("cello", "flute", "harp", "oboe", "piano", "trumpet", "violin", "banjo",
         "clarinet", "saxophone", "tuba", "ukulele", "mandolin", "bagpipes", "harmonica", "trombone"),
        ("{e} plays the {v}.", "In the evenings {e} practises the {v}.", "{e} is learning the {v}."),
        ("Which instrument does {e} play?", "What instrument does {e} practise?", "What does {e} play?"),
    ),
)

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "tr", "st")
_VOWELS = ("a", "e", "i", "o", "u")
_CODAS = ("", "", "", "n", "r", "l", "s")


@dataclass(frozen=True)
class _Fact:
    person: str
    relation: Relation
    value: str


def synthetic_squad(*, seed: int = 0, articles: int = 30, paragraphs_per_article: int = 4,
                    entities_per_paragraph: int = 4, questions_per_paragraph: int = 6) -> list[QAExample]:
    """Generate ``articles * paragraphs_per_article * questions_per_paragraph`` answerable examples (pure, seeded)."""
    _check_args(articles, paragraphs_per_article, entities_per_paragraph, questions_per_paragraph)
    rng = random.Random(seed)
    used_words: set[str] = set()
    examples: list[QAExample] = []
    for a in range(articles):
        title = f"People of {new_word(rng, used_words)}"
        for p in range(paragraphs_per_article):
            people = [new_word(rng, used_words) for _ in range(entities_per_paragraph)]
            context, facts, starts = _draw_paragraph(rng, people)
            for q, index in enumerate(rng.sample(range(len(facts)), questions_per_paragraph)):
                fact = facts[index]
                examples.append(QAExample(
                    id=f"syn{seed}-a{a:03d}-p{p}-q{q}",
                    question=rng.choice(fact.relation.questions).format(e=fact.person),
                    context=context,
                    answers=(fact.value,),
                    answer_starts=(starts[index],),
                    title=title,
                ))
    return examples


def _check_args(articles: int, paragraphs_per_article: int, entities_per_paragraph: int,
                questions_per_paragraph: int) -> None:
    if articles < 1:
        raise ValueError(f"synthetic: articles = {articles}; use at least 1")
    if paragraphs_per_article < 1:
        raise ValueError(f"synthetic: paragraphs_per_article = {paragraphs_per_article}; use at least 1")
    most = min(len(r.values) for r in RELATIONS)
    if not 2 <= entities_per_paragraph <= most:
        raise ValueError(f"synthetic: entities_per_paragraph = {entities_per_paragraph}; use 2 to {most} "
                         "(each person needs a distinct value of every relation)")
    facts = entities_per_paragraph * RELATIONS_PER_PARAGRAPH
    if not 1 <= questions_per_paragraph <= facts:
        raise ValueError(f"synthetic: questions_per_paragraph = {questions_per_paragraph}; use 1 to {facts} "
                         f"(a paragraph states {facts} facts)")


def new_word(rng: random.Random, used: set[str]) -> str:
    """A capitalised made-up two-syllable word not returned before (two keep paragraphs short).

    Words that contain a relation value (``Stealo`` holds ``teal``) are redrawn, so every value found in a
    paragraph is a stated fact.
    """
    while True:
        word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(2)).capitalize()
        if word not in used and not any(v.lower() in word.lower() for r in RELATIONS for v in r.values):
            used.add(word)
            return word


def _draw_paragraph(rng: random.Random, people: list[str]) -> tuple[str, list[_Fact], list[int]]:
    """Draw facts until every value and every name occurs as often as intended (a name never inside another)."""
    for _ in range(_MAX_REDRAWS):
        relations = rng.sample(RELATIONS, RELATIONS_PER_PARAGRAPH)
        facts = [
            _Fact(person, relation, value)
            for relation in relations
            for person, value in zip(people, rng.sample(relation.values, len(people)))
        ]
        rng.shuffle(facts)
        context, starts = _render(rng, facts)
        if _unambiguous(context, facts, people):
            return context, facts, starts
    raise RuntimeError("synthetic: could not draw an unambiguous paragraph; change the seed")


def _render(rng: random.Random, facts: list[_Fact]) -> tuple[str, list[int]]:
    """Join one sentence per fact; returns the text and each value's character offset."""
    sentences: list[str] = []
    starts: list[int] = []
    offset = 0
    for fact in facts:
        template = rng.choice(fact.relation.facts)
        before, after = template.split("{v}")
        prefix = before.format(e=fact.person)
        sentence = prefix + fact.value + after.format(e=fact.person)
        starts.append(offset + len(prefix))
        sentences.append(sentence)
        offset += len(sentence) + 1
    return " ".join(sentences), starts


def _unambiguous(context: str, facts: list[_Fact], people: list[str]) -> bool:
    values_once = all(context.count(f.value) == 1 for f in facts)
    names_as_intended = all(context.count(p) == RELATIONS_PER_PARAGRAPH for p in people)
    return values_once and names_as_intended
