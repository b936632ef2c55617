"""Task data: the data contract (`features`: segments, windows, joint coordinates), the SQuAD and pair loaders
(`squad`, `pairs`), windowing (`qa_features`), pair label sets (`label_sets`), the synthetic QA and pair generators
(`synthetic`, `synthetic_pairs`) and the one-line data errors (`errors`)."""
