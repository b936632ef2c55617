"""`decouple serve`, the worker side: what a Ray Serve replica runs (the driver is `orchestrator.serve`).

- `options`: `ServeOptions`, the one schema of the command's flags, handed to every replica.
- `retrieval`: the BM25 index of a cache's windows, kept beside the cache.
- `queries`: an ``/answer`` request body read into a question, or refused in one line (HTTP 400).
- `scorers`: the logits of (question, window) rows: the decoupled model over cached states, or the full model
  (``--baseline full``) over the windows' tokens.
- `engine`: a batch of questions answered together: retrieve, read, score, decode.
- `replica`: the Serve deployment: the HTTP endpoints and ``@serve.batch``.
"""
