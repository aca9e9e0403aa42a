"""Modules imported when first used, not when their importer is.

cryptography costs about a tenth of a second to import, more than the rest of an analysis of a
small log; only bundles that hold certificates, keys or OPC UA PKI folders need it. A module that
reads them is bound with `lazy_module` by the modules that only sometimes call into it, and is
executed at its first attribute access (the standard library's `importlib.util.LazyLoader`).
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from types import ModuleType

_LOCK = threading.Lock()


def lazy_module(name: str) -> ModuleType:
    """`name`, imported at the first access to one of its attributes (at once when it already is)."""
    with _LOCK:
        found = sys.modules.get(name)
        if found is not None:
            return found
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            raise ImportError(f"no module named {name!r}", name=name)
        loader = importlib.util.LazyLoader(spec.loader)
        spec.loader = loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loader.exec_module(module)
        return module
