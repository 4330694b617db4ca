"""Which paths name videos, by extension: readable without torch (``tinct.video`` needs it).

The CLI sorts its inputs into photos and videos before it decides how to run them, and the Ray
engine's driver, which never imports torch, refuses videos with this check.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["VIDEO_EXTENSIONS", "is_video_path"]

VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"})


def is_video_path(path: str | Path) -> bool:
    """True when ``path`` has a video file extension (.mp4 .mov .mkv .avi .webm .m4v, any case)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS
