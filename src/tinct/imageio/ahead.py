"""Decoding the first photos of a batch while the caller is busy with something else.

``tinct colorize`` spends about a second importing PyTorch and loading the model before its
first photo, on one core: the other core is idle. :class:`ReadAhead` decodes the batch's first
photos on a background thread meanwhile (measured: 80 photos of 0.7 MP decoded during the
import, which took no longer for it), up to a memory budget, and stops when told that the
colorizing begins. Each photo is then taken once, in any order; one that was not read ahead is
read by the caller as usual. A file that fails to decode keeps its error for ``take``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path

from .limits import DEFAULT_MAX_PIXELS
from .read import LoadedImage, read_image

__all__ = ["READ_AHEAD_BYTES", "ReadAhead"]

# At most this much decoded pixel memory waits for the caller (the first photo is read whatever
# its size: the caller needs it first anyway): 32 MP of 8-bit RGB, 128 MP of 8-bit gray (held
# once, seen as three channels), 10 MP of 16-bit photos (float32 RGB).
READ_AHEAD_BYTES = 96_000_000


class ReadAhead:
    """Decode ``paths`` in order (``read_image(path, max_pixels)``) on a daemon thread; it ends at
    ``stop``, at the end of the list, or when the photos decoded and not yet taken hold
    ``budget`` bytes of pixels."""

    def __init__(self, paths: Iterable[str | os.PathLike[str]], max_pixels: int = DEFAULT_MAX_PIXELS,
                 budget: int = READ_AHEAD_BYTES):
        self._paths = [Path(p) for p in paths]
        self._max_pixels, self._budget = max_pixels, budget
        self._decoded: dict[Path, Future[LoadedImage]] = {}
        self._held = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tinct-read-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for path in self._paths:
            with self._lock:
                if self._stopped.is_set() or (self._decoded and self._held >= self._budget):
                    return
                future: Future[LoadedImage] = Future()
                self._decoded[path] = future
            try:
                image = read_image(path, self._max_pixels)
            except BaseException as exc:  # noqa: BLE001 - kept for ``take``, which raises it
                future.set_exception(exc)
                continue
            with self._lock:
                self._held += _bytes(image)
            future.set_result(image)

    def stop(self) -> None:
        """Decode no further photo (the one being decoded is finished and kept)."""
        self._stopped.set()

    def take(self, path: str | os.PathLike[str]) -> LoadedImage | None:
        """The decoded photo at ``path`` (waiting if it is being decoded; raising its decoding
        error), or None when it was not read ahead or was taken already."""
        with self._lock:
            future = self._decoded.pop(Path(path), None)
        if future is None:
            return None
        image = future.result()
        with self._lock:
            self._held -= _bytes(image)
        return image

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end (after ``stop``, the end of the list or a full budget)."""
        self._thread.join(timeout)


def _bytes(image: LoadedImage) -> int:
    """The memory of ``image``'s pixels and alpha (a gray photo's one plane seen three times counts once)."""
    pixels = image.pixels
    planes = 1 if pixels.strides[2] == 0 else pixels.shape[2]
    alpha = image.alpha.nbytes if image.alpha is not None else 0
    return pixels.shape[0] * pixels.shape[1] * planes * pixels.itemsize + alpha
