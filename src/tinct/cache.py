"""Where tinct keeps what it can recompute: ``$XDG_CACHE_HOME/tinct`` or ``~/.cache/tinct``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(kind: str) -> Path:
    """``$XDG_CACHE_HOME/tinct/<kind>`` (an absolute XDG_CACHE_HOME only), else ``~/.cache/tinct/<kind>``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "tinct" / kind
