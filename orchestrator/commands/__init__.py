"""The `decouple` commands, one module each: its flags (``add_arguments``) and ``run``, nothing else. The work is in
the library modules they call; `orchestrator.cli` imports a command only when it is dispatched."""
