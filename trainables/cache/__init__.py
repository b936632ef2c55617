"""The passage cache, in stages (`decouple cache build` is the facade over them, `orchestrator.cache_build`):

- `plan`: the passages of a data source and their windows, in shard order (the *plan*; shard ``i`` holds plan rows
  ``[i*N, (i+1)*N)``); nothing written.
- `encoder`: the Ray Data actor that loads the model once and runs ``encode_passage`` on batches of windows.
- `assembly`: encoded rows gathered per shard; each complete shard written as ``shard-XXXXX.parquet`` and recorded in
  ``manifest.json``; a rerun keeps every intact shard (resume).
- `format`: the on-disk layout: the manifest, the shard schema, checksums.
- `verify`: a cache checked against its manifest (`decouple cache verify`).
- `reader`: the states read back for evaluation, `decouple answer` and `decouple serve`.
"""
