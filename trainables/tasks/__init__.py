"""The tasks a model is trained and evaluated for (span QA, sentence pairs): one object per task, looked up by name."""
