"""Scoring: the official SQuAD metrics (`squad`), n-best span decoding (`span_decoding`), pair metrics (`pairs`) and
the one evaluation loop (`evaluation`)."""
