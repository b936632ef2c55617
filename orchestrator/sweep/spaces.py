"""Loading a sweep's space: ``SPEC`` from a module of `search_spaces` or from a ``.py`` file of the user's."""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from orchestrator.errors import UserError
from search_spaces.base import SweepSpec


def load_spec(space: str) -> tuple[SweepSpec, Path]:
    """The ``SPEC`` of a `search_spaces` module name or of a ``.py`` file, and the file it came from."""
    if space.endswith(".py"):
        path = Path(space).expanduser().resolve()
        if not path.is_file():
            raise UserError(f"{space}: no such search-space file")
        # A stable module name lets the searcher's saved state (which refers to the space's function) load on resume.
        name = "decouple_space_" + hashlib.sha1(str(path).encode()).hexdigest()[:10]
        module = sys.modules.get(name) or _import_file(name, path)
    elif Path(space).suffix or "/" in space or "\\" in space:
        raise UserError(f"{space}: a search space is a Python file defining SPEC (a .py path) or the name of a "
                        "shipped space (split, compression, distillation, pareto); see search_spaces/split.py")
    else:
        try:
            module = importlib.import_module(f"search_spaces.{space}")
        except ModuleNotFoundError:
            message = f"{space}: no module search_spaces/{space}.py; name a shipped space or a .py file"
            raise UserError(message) from None
        path = Path(module.__file__)
    spec = getattr(module, "SPEC", None)
    if not isinstance(spec, SweepSpec):
        raise UserError(f"{path}: defines no SPEC = SweepSpec(...); see search_spaces/split.py")
    return spec, path


def _import_file(name: str, path: Path):
    loader_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise UserError(f"{path}: cannot be imported: {type(err).__name__}: {err}") from None
    return module
