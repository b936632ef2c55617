"""The errors a command turns into one line on stderr (exit code 2) instead of a traceback (`orchestrator.cli`)."""


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2, no traceback."""
