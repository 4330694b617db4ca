"""The ``tinct serve`` web app: one page plus the HTTP API it uses (FastAPI).

Layout::

    GET  /                 the page (static/index.html; its JS and CSS are in static/, no CDN)
    GET  /static/...       the page's assets
    GET  /api/health       liveness, version, queue state
    GET  /api/models       the models a client may choose (by name only), their decoders, limits
    POST /api/colorize     one photo in (multipart), its colorization(s) out (JSON or raw image)
    POST /api/photos       keep a photo to edit its color hints (multipart) -> {"id", "width", "height"}
    POST /api/photos/{photo_id}/colorize   that photo colorized with hints (JSON in, the image out)
    POST /api/photos/{photo_id}/suggest    likely colors at one of its points (JSON in and out)
    GET  /openapi.json     the API's OpenAPI description (FastAPI's interactive /docs is off: it
                           loads its assets from a CDN, and this app works offline)

Robustness rules, in the order a request meets them:

0. ``HostGuard`` (ASGI middleware, when ``allowed_hosts`` is given): a request whose ``Host``
   header is not one of them is refused with 400 (DNS rebinding against a loopback server).
1. ``RequestGuard`` (ASGI middleware): a POST whose ``Content-Length`` is over the request cap
   is refused with 413 before its body is read; a streamed body is counted and cut off at the
   cap; a POST whose ``Origin`` is another site is refused with 403 (a web page elsewhere must
   not be able to make this computer colorize).
2. Parameters are checked before any image is read: the model is looked up by name in the
   registry given to :func:`create_app` (clients never send paths), the decoder must be one
   of the model's, ``samples`` is capped, a style reference needs a model with global features,
   ``hints`` (JSON, at most ``max_hints``) a model that takes them.
3. Each upload is read up to its size cap (413 past it).
4. The job waits in :class:`JobQueue`: ``workers`` jobs (default 1) run at a time, at most
   ``max_queue`` wait, further requests get 503 with ``Retry-After``. Decoding happens inside
   the job, so at most ``workers`` images are decoded in memory at once: memory is bounded by
   the caps, not by the number of clients.
5. In the job, :func:`tinct.imageio.read_image` sniffs the content (names and content types are
   ignored) and checks the header's pixel count before decoding (decompression bombs: 413);
   undecodable, truncated and empty uploads are 422 with a one-line message.

Color hints (a model whose ``forward_options`` has ``hints``) are edited on a kept photo: the
upload stays in :class:`PhotoStore` (an LRU bounded by count and bytes, see :class:`Limits`)
with its :class:`tinct.pipeline.Prepared` form per (id, model, render size), so that a changed
hint reruns only the network's head. Hints on a kept photo are checked against its size
before the job is queued (on ``/api/colorize``, once the photo is decoded): a bad one is a 400
naming ``hints`` and the hint. An unknown or evicted photo id is 404 (the page then uploads
the photo again).

Nothing is written to disk unless the app was given a ``save_dir``: results go back in the
response. (Starlette spools uploads over 1 MiB to an anonymous temporary file, which has no
name on disk and is gone when the request ends.) Even with a ``save_dir``, the colorizations
of kept photos are not written: each hint edit makes one; the page's Download saves the one
wanted.

Every error response the app makes is JSON ``{"error": "<one line>", "field": <form field or null>}``.
(Requests uvicorn cannot parse as HTTP never reach the app: uvicorn answers those itself, in
plain text.) A result that lost something on the way (EXIF too large for a JPEG) says so in
``warnings`` (JSON) or the ``X-Tinct-Warning`` header (``output=image``), and in the log.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import re
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import anyio
import torch
from fastapi import Body, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from .. import imageio as tio
from ..errors import UsageError
from ..hints import Hint, HintError, hint_list, parse_hints
from ..models.base import ColorModel, build_model
from ..pipeline import DEFAULT_RENDER_SIZE, Colorizer, Prepared
from ..weights import load_weights, read_metadata

__all__ = ["create_app", "Limits", "ModelPool", "JobQueue", "PhotoStore", "StoredPhoto", "ApiError", "QueueFull",
           "HostGuard", "STATIC_DIR"]

log = logging.getLogger("tinct.serve")
STATIC_DIR = Path(__file__).parent / "static"
T = TypeVar("T")

_FORMATS = {"png": ("PNG", "image/png", ".png"), "jpeg": ("JPEG", "image/jpeg", ".jpg")}
_JPEG_MAX_EXIF = 65533 - 2  # as tinct.imageio.write: the payload limit of a JPEG APP1 segment
# the page's Content-Security-Policy: everything from this server, images also from blob:/data:
_CSP = ("default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


# ------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class Limits:
    """What one request may ask for; all enforced by the server (the page only mirrors them).

    Attributes:
        max_upload_bytes: cap on each uploaded file (the photo, the style reference).
        max_pixels: cap on width * height of each upload, checked from its header.
        max_samples: cap on ``samples`` per request.
        max_queue: requests allowed to wait for the worker; more get 503.
        workers: colorizations run at the same time (each holds one decoded image).
        max_hints: cap on the color hints of one request.
        max_suggestions: cap on ``k``, the colors one suggestion request may ask for.
        max_photos: photos kept for editing hints (``POST /api/photos``); the least recently
            used go first.
        max_photos_bytes: cap on the kept uploads' total size (the newest is always kept).
        max_prepared: kept photos held ready for a model (decoded, with the backbone's features).
        max_prepared_bytes: cap on their total memory; a photo alone over it is prepared again
            for each request instead of being kept.
    """

    max_upload_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_samples: int = 8
    max_queue: int = 32
    workers: int = 1
    max_hints: int = 256
    max_suggestions: int = 16
    max_photos: int = 16
    max_photos_bytes: int = 256 * 1024 * 1024
    max_prepared: int = 4
    max_prepared_bytes: int = 512 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "max_samples", "workers", "max_hints", "max_suggestions",
                     "max_photos", "max_photos_bytes", "max_prepared", "max_prepared_bytes"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_queue < 0:
            raise UsageError(f"max_queue must be >= 0, got {self.max_queue}")

    @property
    def max_request_bytes(self) -> int:
        """Cap on a whole request body: a photo, a style reference and the form fields."""
        return 2 * self.max_upload_bytes + 64 * 1024


class ApiError(Exception):
    """A client error: HTTP ``status`` with a one-line ``message`` about form ``field``."""

    def __init__(self, status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers


class QueueFull(Exception):
    """Raised by :meth:`JobQueue.run` when ``max_queue`` jobs are already waiting."""


# ------------------------------------------------------------------------------ models
@dataclass(frozen=True)
class ModelInfo:
    """What a client needs to know about one model to build a request for it."""

    name: str
    arch: str
    head: str
    decode_methods: tuple[str, ...]
    default_decode: str
    style: bool
    title: str
    description: str
    hints: bool = False

    @property
    def samples(self) -> bool:
        """Whether the model can draw several samples (a histogram decoded with ``sample``)."""
        return "sample" in self.decode_methods


def _describe(name: str, model: ColorModel, meta: Mapping[str, Any]) -> ModelInfo:
    return ModelInfo(
        name=name, arch=model.arch, head=model.head_kind, decode_methods=tuple(model.decode_methods),
        default_decode=model.default_decode, style="style_L" in model.forward_options,
        title=str(meta.get("name") or name), description=" ".join(str(meta.get("description") or "").split()),
        hints="hints" in model.forward_options,
    )


class ModelPool:
    """The models a server offers: name -> weights file, each loaded at most once and cached.

    Clients choose by name only; :meth:`get` raises :class:`ApiError` for any other string
    (paths included), so no client can make the server open a file. Loaded models are kept
    in least-recently-used order, at most ``max_loaded`` at a time.
    """

    def __init__(self, paths: Mapping[str, str | Path], default: str | None = None, max_loaded: int = 2,
                 device: str = "cpu"):
        if not paths:
            raise UsageError("no models to serve")
        self.paths = {str(k): Path(v) for k, v in paths.items()}
        self.default = default if default is not None else next(iter(self.paths))
        if self.default not in self.paths:
            raise UsageError(f"default model {self.default!r} is not one of {', '.join(self.paths)}")
        self.max_loaded = max(1, max_loaded)
        self.device = device
        self._loaded: OrderedDict[str, ColorModel] = OrderedDict()
        self._lock = threading.Lock()
        self.infos = {name: self._info(name) for name in self.paths}

    def _info(self, name: str) -> ModelInfo:
        """Describe a model from its weights header; the network is built on the meta device
        (no memory, no weights read) just to learn its decoders and options."""
        meta = read_metadata(self.paths[name])
        config = dict(meta.get("config", {}))
        if "pretrained" in config:
            config["pretrained"] = False
        try:
            with torch.device("meta"):
                skeleton = build_model(meta["arch"], **config)
        except Exception:  # noqa: BLE001 - some constructor cannot run on meta: load it for real
            return _describe(name, self.get(name), meta)
        return _describe(name, skeleton, meta)

    def check(self, name: str | None) -> ModelInfo:
        """The info of model ``name`` (None: the default); ApiError 400 for anything else.

        Besides the served names, a shipped alias (``default``...) is accepted when it names a
        served file, as ``tinct.weights.resolve`` does; ``default`` is otherwise the server's
        default model. Paths are never resolved.
        """
        if name is None or name == "":
            return self.infos[self.default]
        served = name if name in self.infos else self._alias(name)
        if served is None:
            shown = name if len(name) <= 60 else name[:57] + "..."
            raise ApiError(400, f"unknown model {shown!r}; choose one of: {', '.join(self.infos)}", "model")
        return self.infos[served]

    def _alias(self, name: str) -> str | None:
        """The served name a shipped name or alias stands for, or None (never looks at paths)."""
        from ..weights import shipped_weights

        target = shipped_weights().get(name)
        if target is not None:
            for served, path in self.paths.items():
                if path.resolve() == target.resolve():
                    return served
        return self.default if name == "default" else None

    def get(self, name: str) -> ColorModel:
        """The loaded model ``name`` (loads it on first use; thread-safe)."""
        if name not in self.paths:
            raise ApiError(400, f"unknown model {name!r}", "model")
        with self._lock:
            model = self._loaded.get(name)
            if model is None:
                log.info("loading model %s", name)
                model = load_weights(self.paths[name], device=self.device)
                self._loaded[name] = model
                while len(self._loaded) > self.max_loaded:
                    self._loaded.popitem(last=False)
            self._loaded.move_to_end(name)
            return model

    @property
    def loaded(self) -> list[str]:
        """Names of the models in memory now."""
        return list(self._loaded)


# ------------------------------------------------------------------------------ queue
class JobQueue:
    """Runs blocking jobs in threads, ``workers`` at a time, with at most ``max_waiting`` waiting.

    An asyncio semaphore (one per event loop) makes requests wait without holding a thread;
    a thread semaphore around the job itself is the hard guarantee that no more than
    ``workers`` jobs ever run at once, whatever the number of loops. ``peak_running`` records
    the most jobs seen running together (tests check it never exceeds ``workers``).
    """

    def __init__(self, workers: int = 1, max_waiting: int = 32):
        self.workers = workers
        self.max_waiting = max_waiting
        self.waiting = 0
        self.running = 0
        self.peak_running = 0
        self.done = 0
        self._slots = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = \
            weakref.WeakKeyDictionary()

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` in a worker thread when a slot is free; QueueFull if the queue is full."""
        loop = asyncio.get_running_loop()
        with self._lock:
            gate = self._gates.get(loop)
            if gate is None:
                gate = self._gates[loop] = asyncio.Semaphore(self.workers)
            if gate.locked() and self.waiting >= self.max_waiting:
                raise QueueFull(f"the server is busy ({self.running} running, {self.waiting} waiting); "
                                "try again shortly")
            self.waiting += 1
        try:
            await gate.acquire()
        finally:
            with self._lock:
                self.waiting -= 1
        try:
            # a cancelled request still waits for its thread, so the slot is never handed on early
            return await anyio.to_thread.run_sync(self._call, fn)
        finally:
            gate.release()

    def _call(self, fn: Callable[[], T]) -> T:
        with self._slots:
            with self._lock:
                self.running += 1
                self.peak_running = max(self.peak_running, self.running)
            try:
                return fn()
            finally:
                with self._lock:
                    self.running -= 1
                    self.done += 1


# ------------------------------------------------------------------------------ kept photos
@dataclass(frozen=True)
class StoredPhoto:
    """A photo kept for editing color hints: its upload, a safe file stem, its size (upright)."""

    id: str
    data: bytes = dataclass_field(repr=False)
    stem: str
    width: int
    height: int


class PhotoStore:
    """Photos uploaded with ``POST /api/photos``, kept to be colorized again as their hints change.

    Two least-recently-used caches, each bounded by count and bytes: the uploads (encoded bytes,
    the source of truth: the newest is always kept), and the ``Prepared`` photos made from them
    per (id, model, render size): decoded pixels, L and the backbone's features, so that a new
    hint reruns only the network's head. An evicted ``Prepared`` is made again from its upload;
    an evicted upload is gone (404). A ``Prepared`` alone over its byte budget is not kept.
    Ids are random (128 bits), so one client cannot guess another's photo. Thread-safe.
    """

    def __init__(self, max_photos: int = 16, max_photos_bytes: int = 256 * 1024 * 1024, max_prepared: int = 4,
                 max_prepared_bytes: int = 512 * 1024 * 1024):
        self.max_photos = max_photos
        self.max_photos_bytes = max_photos_bytes
        self.max_prepared = max_prepared
        self.max_prepared_bytes = max_prepared_bytes
        self._photos: OrderedDict[str, StoredPhoto] = OrderedDict()
        self._prepared: OrderedDict[tuple[str, str, int], tuple[Prepared, int]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, data: bytes, stem: str, width: int, height: int) -> StoredPhoto:
        """Keep an upload (already checked to decode) under a new random id."""
        photo = StoredPhoto(uuid.uuid4().hex, data, stem, width, height)
        with self._lock:
            self._photos[photo.id] = photo
            while len(self._photos) > 1 and (len(self._photos) > self.max_photos
                                             or self.photos_bytes > self.max_photos_bytes):
                old, _ = self._photos.popitem(last=False)
                for key in [k for k in self._prepared if k[0] == old]:
                    del self._prepared[key]
        return photo

    def get(self, photo_id: str) -> StoredPhoto:
        """The kept photo ``photo_id``; ApiError 404 if there is none (never was, or evicted)."""
        with self._lock:
            photo = self._photos.get(photo_id)
            if photo is not None:
                self._photos.move_to_end(photo_id)
        if photo is None:
            shown = photo_id if len(photo_id) <= 40 else photo_id[:37] + "..."
            raise ApiError(404, f"no kept photo {shown!r} (the server keeps the {self.max_photos} most recent); "
                                "upload it again with POST /api/photos", "photo_id")
        return photo

    def prepared(self, photo: StoredPhoto, model: str, render_size: int,
                 make: Callable[[bytes], Prepared]) -> Prepared:
        """The photo prepared for ``model`` at ``render_size``: kept, or ``make(upload)`` (then kept)."""
        key = (photo.id, model, render_size)
        with self._lock:
            hit = self._prepared.get(key)
            if hit is not None:
                self._prepared.move_to_end(key)
                return hit[0]
        prepared = make(photo.data)  # outside the lock: this is the slow part
        self.keep(photo, model, render_size, prepared)
        return prepared

    def keep(self, photo: StoredPhoto, model: str, render_size: int, prepared: Prepared) -> None:
        """Keep ``prepared`` for (photo, model, render size) if it fits and the photo is still kept."""
        size = prepared_bytes(prepared)
        if size > self.max_prepared_bytes:
            return
        with self._lock:
            if photo.id not in self._photos:
                return
            self._prepared[(photo.id, model, render_size)] = (prepared, size)
            while len(self._prepared) > self.max_prepared or self.prepared_bytes > self.max_prepared_bytes:
                self._prepared.popitem(last=False)

    @property
    def photos_bytes(self) -> int:
        """Total size of the kept uploads."""
        return sum(len(p.data) for p in self._photos.values())

    @property
    def prepared_bytes(self) -> int:
        """Total memory of the kept ``Prepared`` photos (as ``prepared_bytes`` counts it)."""
        return sum(size for _, size in self._prepared.values())

    def __len__(self) -> int:
        return len(self._photos)

    @property
    def prepared_keys(self) -> list[tuple[str, str, int]]:
        """(id, model, render size) of the kept ``Prepared`` photos, least recently used first."""
        return list(self._prepared)


def prepared_bytes(prepared: Prepared) -> int:
    """Memory held by a ``Prepared`` photo: its pixels, alpha, metadata, L at both sizes, features."""
    img = prepared.image
    arrays = img.nbytes
    tensors = sum(t.numel() * t.element_size() for t in (prepared.L, prepared.L_small, *(prepared.features or [])))
    return arrays + tensors + len(img.exif or b"") + len(img.icc_profile or b"")


# ------------------------------------------------------------------------------ middleware
class RequestGuard:
    """ASGI middleware: caps POST bodies (by Content-Length and while streaming) and refuses
    cross-site POSTs (an ``Origin`` header naming another host than ``Host``)."""

    def __init__(self, app: ASGIApp, max_body: int):
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc.lower() != headers.get("host", "").lower():
            await _send_error(send, 403, "cross-site requests are not allowed; use the page this server serves")
            return
        if origin == "null":
            await _send_error(send, 403, "requests from opaque origins are not allowed")
            return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _send_error(send, 413, f"the request is over the server's limit of {_mb(self.max_body)}")
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise StarletteHTTPException(413, f"the request is over the server's limit of {_mb(self.max_body)}")
            return message

        await self.app(scope, limited_receive, send)


class HostGuard:
    """ASGI middleware: refuses requests whose ``Host`` header is not one of ``allowed_hosts``,
    with a JSON 400 like every other error (Starlette's TrustedHostMiddleware answers in plain
    text). Patterns are exact host names (any port) or ``*.domain``."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]):
        self.app = app
        self.allowed = [h.lower() for h in allowed_hosts]

    def allows(self, header: str | None) -> bool:
        """Whether a ``Host`` header value names an allowed host."""
        try:
            host = urlsplit(f"//{header}").hostname if header else None
        except ValueError:
            return False
        if not host:
            return False
        return any(host == p or (p.startswith("*.") and host.endswith(p[1:])) or p == "*" for p in self.allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"host"), None)
            if not self.allows(host):
                await _send_error(send, 400, "invalid Host header: this server answers only to "
                                             f"{', '.join(self.allowed)} (DNS rebinding protection)")
                return
        await self.app(scope, receive, send)


async def _send_error(send: Send, status: int, message: str) -> None:
    resp = JSONResponse({"error": message, "field": None}, status_code=status, headers={"Connection": "close"})
    await resp({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:  # pragma: no cover - JSONResponse never reads
    return {"type": "http.disconnect"}


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB" if n >= 1024 else f"{n} bytes"


# ------------------------------------------------------------------------------ API schema
class ModelOut(BaseModel):
    """A model the server offers."""

    name: str = Field(description="what to send as the `model` form field")
    title: str = Field(description="the model's own name from its weights file")
    arch: str
    head: str = Field(description="'histogram' models have several decoders and can draw samples")
    decode_methods: list[str]
    default_decode: str
    samples: bool = Field(description="whether `samples` > 1 is possible (decoder 'sample')")
    style: bool = Field(description="whether a `style` reference image is accepted (global features)")
    hints: bool = Field(default=False, description="whether color `hints` are accepted (a hint model)")
    description: str = ""


class LimitsOut(BaseModel):
    """The server's limits (see ``tinct serve --help``)."""

    max_upload_bytes: int
    max_pixels: int
    max_samples: int
    max_queue: int
    formats: list[str]
    max_hints: int = Field(description="most color hints per request")
    max_suggestions: int = Field(description="most colors one suggestion request may ask for (`k`)")


class ModelsOut(BaseModel):
    """Response of GET /api/models."""

    default: str
    models: list[ModelOut]
    limits: LimitsOut


class HealthOut(BaseModel):
    """Response of GET /api/health."""

    status: Literal["ok"]
    version: str
    running: int
    waiting: int
    done: int
    peak_running: int
    workers: int
    loaded_models: list[str]


class SampleOut(BaseModel):
    """One colorized image, base64-encoded."""

    index: int = Field(description="1-based")
    seed: int | None = Field(description="generator seed (decoder 'sample' only)")
    filename: str = Field(description="a suggested download name")
    media_type: str
    data: str = Field(description="the encoded image file, base64")


class ColorizeOut(BaseModel):
    """Response of POST /api/colorize (``output=json``)."""

    model: str
    decode: str
    width: int
    height: int
    format: str
    queued_ms: float
    elapsed_ms: float
    saved: list[str] = Field(default_factory=list, description="file names written to the server's save folder")
    warnings: list[str] = Field(default_factory=list,
                                description="what the results lost on the way, e.g. EXIF too large for a JPEG")
    results: list[SampleOut]


_HINTS_DOC = ('color hints: [{"x": 120, "y": 45, "color": "#3050c0"}, ...], x and y in pixels of the photo '
              "(fractions of its size when both are <= 1 and one is not whole), colors sRGB hex; "
              "only for models with hints=true")
_HINTS_EXAMPLE = [{"x": 120, "y": 45, "color": "#3050c0"}]


class PhotoOut(BaseModel):
    """Response of POST /api/photos: the kept photo's id and size."""

    id: str = Field(description="what to put in /api/photos/{photo_id}/...")
    width: int = Field(description="pixels, upright (EXIF orientation applied): the hints' coordinates")
    height: int
    model: str = Field(description="the model it was made ready for")


class PhotoColorizeIn(BaseModel):
    """Body of POST /api/photos/{photo_id}/colorize (every field optional)."""

    hints: list[Any] | None = Field(default=None, description=_HINTS_DOC, examples=[_HINTS_EXAMPLE])
    model: str | None = Field(default=None, description="a name from GET /api/models (default: the server's)")
    decode: str | None = Field(default=None, description="decoder (histogram models); default: the model's")
    seed: int = Field(default=0, description="the generator's seed (decoder 'sample')")
    format: Literal["png", "jpeg"] = Field(default="png", description="output file format")


class SuggestIn(BaseModel):
    """Body of POST /api/photos/{photo_id}/suggest."""

    x: float = Field(description="the point, in pixels of the photo (as in hints)")
    y: float
    k: int = Field(default=6, description="how many colors (at most the limit max_suggestions)")
    hints: list[Any] | None = Field(default=None, description="the other hints, which the colors should follow; "
                                    + _HINTS_DOC, examples=[_HINTS_EXAMPLE])
    model: str | None = Field(default=None, description="a name from GET /api/models (default: the server's)")


class ColorOut(BaseModel):
    """One suggested color."""

    color: str = Field(description="sRGB hex, '#rrggbb', at the photo's own lightness there")
    probability: float = Field(description="the model's probability of that color (and of those near it)")


class SuggestOut(BaseModel):
    """Response of POST /api/photos/{photo_id}/suggest: colors most likely first."""

    model: str
    x: float
    y: float
    colors: list[ColorOut]


class ErrorOut(BaseModel):
    """Every error response."""

    error: str = Field(description="one line, for people")
    field: str | None = Field(default=None, description="the form field at fault, if any")


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text} for code, text in {
        400: "bad parameter (unknown model, decoder, too many samples, style not supported, a bad hint "
             "or hints for a model that takes none)",
        403: "cross-site request",
        413: "upload over the size cap, or image over the pixel cap",
        422: "not an image, truncated, corrupt, empty, or a malformed form",
        503: "the queue is full; retry after the Retry-After seconds",
    }.items()
}
_PHOTO_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS, 404: {"model": ErrorOut, "description": "no kept photo with that id (never was, or evicted): "
                                                       "upload it again"}}


# ------------------------------------------------------------------------------ the job
@dataclass
class _Job:
    model: str
    method: str
    samples: int
    seed: int
    fmt: str
    image: bytes
    image_name: str
    style: bytes | None
    hints: list[Any] | None = None  # as sent (checked by _hints_in); parsed once the photo's size is known


def _client_stem(filename: str | None) -> str:
    """A safe file stem from a client's file name (its last component, only [\\w-])."""
    base = re.split(r"[\\/]", filename or "")[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.strip(".") else base
    stem = re.sub(r"[^\w-]+", "_", stem, flags=re.ASCII).strip("_.-")[:80]
    return stem or "photo"


def _image_error(exc: tio.ImageError, what: str, field: str) -> ApiError:
    """read_image's one-line message, about ``what`` instead of ``<bytes>``; 413 for the pixel cap."""
    msg = str(exc).replace("<bytes>", what, 1)
    msg = msg.replace("; raise max_pixels if you trust it", " (tinct serve --max-pixels)")
    status = 413 if "over the limit of" in msg else 422
    return ApiError(status, msg, field)


def _encode(pil: Image.Image, fmt: str, source: tio.LoadedImage, notes: list[str]) -> bytes:
    """The result as a ``fmt`` file with the source's ICC profile and EXIF.

    An EXIF block too large for a JPEG (64 KB, e.g. from a PNG or WebP) is dropped, as
    ``tinct colorize`` does: a one-line note goes to ``notes`` (once) and to the log.
    """
    buf = io.BytesIO()
    extra: dict[str, Any] = {}
    if source.icc_profile:
        extra["icc_profile"] = source.icc_profile
    if source.exif and fmt == "jpeg" and len(source.exif) > _JPEG_MAX_EXIF:
        note = f"the photo's EXIF block of {len(source.exif):,} bytes does not fit in a JPEG; it is dropped"
        if note not in notes:
            notes.append(note)
            log.warning("%s", note)
    elif source.exif:
        extra["exif"] = source.exif
    if fmt == "jpeg":
        pil.convert("RGB").save(buf, "JPEG", quality=92, **extra)
    else:
        pil.save(buf, "PNG", compress_level=4, **extra)
    return buf.getvalue()


# what a job returns: (height, width), [(seed, encoded file)], [saved names], [warnings]
_JobResult = tuple[tuple[int, int], list[tuple[int | None, bytes]], list[str], list[str]]


def _run_job(pool: ModelPool, render_size: int, limits: Limits, job: _Job, save_dir: Path | None) -> _JobResult:
    """Decode, colorize ``samples`` times and encode (runs in the worker thread).

    Returns ((height, width), [(seed, encoded file)], [saved names], [warnings]); the decoded
    pixels stay in here, so they are freed before the worker takes the next job.
    """
    try:
        img = tio.read_image(job.image, max_pixels=limits.max_pixels)
    except tio.ImageError as exc:
        raise _image_error(exc, "the photo", "image") from None
    style = None
    if job.style is not None:
        try:
            style = tio.read_image(job.style, max_pixels=limits.max_pixels)
        except tio.ImageError as exc:
            raise _image_error(exc, "the style reference", "style") from None
    height, width = img.pixels.shape[:2]
    hints = _parse_hints(job.hints, width, height) if job.hints else None
    colorizer = Colorizer(pool.get(job.model), render_size, job.method)  # third: the decoder
    outputs: list[tuple[int | None, bytes]] = []
    saved: list[str] = []
    notes: list[str] = []
    for k in range(job.samples):
        seed = job.seed + k if job.method == "sample" else None
        options: dict[str, Any] = {}
        if seed is not None:
            options["generator"] = torch.Generator().manual_seed(seed)
        if style is not None:
            options["style"] = style
        try:
            # the already-decoded image goes straight in: colorize() would decode it again
            result = colorizer.colorize_loaded(img, hints=hints, **options)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        except MemoryError:
            raise ApiError(413, "the photo is too large to colorize in this server's memory; try a smaller one",
                           "image") from None
        outputs.append((seed, _encode(result.to_pil(), job.fmt, img, notes)))
        if save_dir is not None:
            suffix = f"-sample{k + 1}" if job.samples > 1 else ""
            dest = save_dir / f"{job.image_name}-{uuid.uuid4().hex[:8]}-color{suffix}{_FORMATS[job.fmt][2]}"
            tio.write_image(dest, result.rgb, result.alpha if job.fmt == "png" else None,
                            exif=img.exif, icc_profile=img.icc_profile)
            saved.append(dest.name)
    h, w = img.pixels.shape[:2]
    return (h, w), outputs, saved, notes


# ------------------------------------------------------------------------------ hint jobs
def _hints_in(value: Any, info: ModelInfo, limits: Limits, pool: ModelPool) -> list[Any] | None:
    """Hints as a client sent them (a form field's JSON text, or a JSON body's list) -> the list,
    or None for no hint. What can be checked before the photo's size is known is checked here
    (400 naming ``hints``): JSON, a list, at most ``max_hints``, a model that takes hints."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        value = hint_list(value)
    except HintError as exc:
        raise ApiError(400, str(exc), "hints") from None
    if len(value) > limits.max_hints:
        raise ApiError(400, f"at most {limits.max_hints} hints per request, got {len(value)}", "hints")
    if value and not info.hints:
        takers = [i.name for i in pool.infos.values() if i.hints]
        where = (f"choose one that does: {', '.join(takers)}" if takers
                 else "this server offers none that does (such as tinct-lite2-hints)")
        raise ApiError(400, f"model {info.name!r} takes no color hints; {where}", "hints")
    return value or None


def _parse_hints(hints: list[Any] | None, width: int, height: int) -> list[Hint]:
    """Hints on a ``width`` x ``height`` photo (``tinct.hints.parse_hints``); a bad one is a 400
    naming the field ``hints`` and the hint by its number."""
    try:
        return parse_hints(hints or [], width, height)
    except HintError as exc:
        raise ApiError(400, str(exc), "hints") from None


def _decode(data: bytes, limits: Limits) -> tio.LoadedImage:
    """The upload decoded within the pixel cap; 413/422 naming the ``image`` field."""
    try:
        return tio.read_image(data, max_pixels=limits.max_pixels)
    except tio.ImageError as exc:
        raise _image_error(exc, "the photo", "image") from None


@dataclass(frozen=True)
class _PhotoJob:
    """What a job on a kept photo needs: the app's parts and the request's model and decoder."""

    pool: ModelPool
    store: PhotoStore
    limits: Limits
    render_size: int
    model: str
    method: str | None = None

    def colorizer(self) -> Colorizer:
        return Colorizer(self.pool.get(self.model), self.render_size, self.method, name=self.model)

    def prepared(self, colorizer: Colorizer, photo: StoredPhoto) -> Prepared:
        """The photo ready for this model: kept, or decoded and prepared again (then kept)."""
        return self.store.prepared(photo, self.model, self.render_size,
                                   lambda data: colorizer.prepare(_decode(data, self.limits)))


def _keep_photo(job: _PhotoJob, data: bytes, stem: str) -> StoredPhoto:
    """Decode an upload (checking it as /api/colorize does), keep it and its ``Prepared`` form
    for the job's model, so that its first colorization runs only the network's head."""
    img = _decode(data, job.limits)
    height, width = img.pixels.shape[:2]
    try:
        colorizer = job.colorizer()
        prepared = colorizer.prepare(img)
    except MemoryError:
        raise ApiError(413, "the photo is too large to colorize in this server's memory; try a smaller one",
                       "image") from None
    photo = job.store.add(data, stem, width, height)
    job.store.keep(photo, job.model, job.render_size, prepared)
    return photo


def _colorize_photo(job: _PhotoJob, photo: StoredPhoto, hints: list[Hint], fmt: str, seed: int) -> tuple[bytes, list[str]]:
    """A kept photo colorized with ``hints`` and encoded as ``fmt`` -> (file, [warnings])."""
    colorizer = job.colorizer()
    options: dict[str, Any] = {}
    if colorizer.method == "sample":
        options["generator"] = torch.Generator().manual_seed(seed)
    try:
        prepared = job.prepared(colorizer, photo)
        result = colorizer.colorize_loaded(prepared, hints=hints, **options)
    except HintError as exc:
        raise ApiError(400, str(exc), "hints") from None
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    except MemoryError:
        raise ApiError(413, "the photo is too large to colorize in this server's memory; try a smaller one",
                       "image") from None
    notes: list[str] = []
    return _encode(result.to_pil(), fmt, prepared.image, notes), notes


def _suggest_colors(job: _PhotoJob, photo: StoredPhoto, x: float, y: float, k: int,
                    hints: list[Hint]) -> list[dict[str, Any]]:
    """The ``k`` likeliest colors at (x, y) of a kept photo, given the other ``hints``."""
    colorizer = job.colorizer()
    try:
        return colorizer.suggest(job.prepared(colorizer, photo), x, y, k=k, hints=hints)
    except HintError as exc:
        raise ApiError(400, str(exc), "hints") from None
    except ValueError as exc:
        raise ApiError(400, str(exc), "model") from None


async def _read_upload(upload: UploadFile, cap: int, field: str, what: str) -> bytes:
    data = await upload.read(cap + 1)
    await upload.close()
    if len(data) > cap:
        raise ApiError(413, f"{what} is over the upload limit of {_mb(cap)}", field)
    return data


def _is_empty_field(upload: UploadFile | None) -> bool:
    """A file field a form sent with no file chosen (no name, no bytes) counts as absent."""
    return upload is None or (not upload.filename and upload.size in (0, None))


# ------------------------------------------------------------------------------ the app
def create_app(models: Mapping[str, str | Path] | None = None, *, default_model: str | None = None,
               limits: Limits | None = None, render_size: int = DEFAULT_RENDER_SIZE, device: str = "cpu",
               save_dir: str | Path | None = None, allowed_hosts: list[str] | None = None,
               max_loaded_models: int = 2) -> FastAPI:
    """Build the web app.

    Args:
        models: name -> weights file the server offers (clients choose by name only). None:
            tinct's shipped weights (``default`` is the default; aliases are not listed twice).
        default_model: the model used when a request names none (default: ``default`` or the first).
        limits: upload, pixel, sample and queue caps.
        render_size: the network's input size (longer side), as in ``tinct colorize``.
        device: "cpu" or "cuda".
        save_dir: if given, every result is also written there (server-made names); else
            nothing is written to disk.
        allowed_hosts: if given, requests whose Host header is not one of these are refused
            (protects a loopback server from DNS rebinding).
        max_loaded_models: models kept in memory at once (least recently used go first).
    """
    limits = limits or Limits()
    if models is None:
        models, default_model = _shipped_models(default_model)
    pool = ModelPool(models, default=default_model, max_loaded=max_loaded_models, device=device)
    out_dir = Path(save_dir) if save_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)

    app = FastAPI(
        title="tinct",
        version=__version__,
        summary="Automatic colorization of black-and-white photos, on this computer.",
        description="The API behind the `tinct serve` page. Errors are JSON `{error, field}`.",
        docs_url=None, redoc_url=None, openapi_url="/openapi.json",
    )
    app.state.pool = pool
    app.state.limits = limits
    app.state.queue = JobQueue(workers=limits.workers, max_waiting=limits.max_queue)
    app.state.render_size = render_size
    app.state.save_dir = out_dir
    app.state.photos = PhotoStore(limits.max_photos, limits.max_photos_bytes, limits.max_prepared,
                                  limits.max_prepared_bytes)

    app.add_middleware(RequestGuard, max_body=limits.max_request_bytes)
    if allowed_hosts:
        app.add_middleware(HostGuard, allowed_hosts=allowed_hosts)
    _install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html",
                            headers={"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff",
                                     "Cache-Control": "no-cache"})

    @app.get("/api/health", response_model=HealthOut, tags=["server"])
    async def health(request: Request) -> HealthOut:
        """Liveness and queue state."""
        q: JobQueue = request.app.state.queue
        return HealthOut(status="ok", version=__version__, running=q.running, waiting=q.waiting, done=q.done,
                         peak_running=q.peak_running, workers=q.workers,
                         loaded_models=request.app.state.pool.loaded)

    @app.get("/api/models", response_model=ModelsOut, tags=["models"])
    async def list_models(request: Request) -> ModelsOut:
        """The models to choose from (by name), their decoders and options, and the limits."""
        p: ModelPool = request.app.state.pool
        lim: Limits = request.app.state.limits
        return ModelsOut(
            default=p.default,
            models=[ModelOut(name=i.name, title=i.title, arch=i.arch, head=i.head,
                             decode_methods=list(i.decode_methods), default_decode=i.default_decode,
                             samples=i.samples, style=i.style, hints=i.hints, description=i.description)
                    for i in p.infos.values()],
            limits=LimitsOut(max_upload_bytes=lim.max_upload_bytes, max_pixels=lim.max_pixels,
                             max_samples=lim.max_samples, max_queue=lim.max_queue, formats=list(_FORMATS),
                             max_hints=lim.max_hints, max_suggestions=lim.max_suggestions),
        )

    @app.post("/api/colorize", response_model=ColorizeOut, tags=["colorize"], responses={
        **_ERRORS, 200: {"content": {"image/png": {}, "image/jpeg": {}},
                         "description": "JSON (output=json) or the image itself (output=image)"}})
    async def colorize(
        request: Request,
        image: Annotated[UploadFile, File(description="the photo (JPEG, PNG, TIFF, WebP or BMP; sniffed)")],
        model: Annotated[str | None, Form(description="a name from GET /api/models (default: the server's)")] = None,
        decode: Annotated[str | None, Form(description="decoder (histogram models); default: the model's")] = None,
        samples: Annotated[int, Form(description="how many colorizations (needs decoder 'sample' if > 1)")] = 1,
        seed: Annotated[int, Form(description="first sample's seed (decoder 'sample')")] = 0,
        style: Annotated[UploadFile | None, File(description="style reference (models with style=true)")] = None,
        format: Annotated[Literal["png", "jpeg"], Form(description="output file format")] = "png",
        output: Annotated[Literal["json", "image"], Form(
            description="'json': base64 results; 'image': the image file itself (samples=1 only)")] = "json",
        hints: Annotated[str | None, Form(description="JSON text of " + _HINTS_DOC)] = None,
    ) -> Any:
        """Colorize one photo. Send one request per photo; requests queue for the worker."""
        p: ModelPool = request.app.state.pool
        lim: Limits = request.app.state.limits
        info = p.check(model)
        method = _check_decode(info, decode, samples, lim)
        if output == "image" and samples != 1:
            raise ApiError(400, "output=image returns one image; use output=json for several samples", "output")
        has_style = not _is_empty_field(style)
        if has_style and not info.style:
            raise ApiError(400, f"model {info.name!r} has no global features, so it cannot take a style reference",
                           "style")
        if not 0 <= seed < 2**62:
            raise ApiError(400, f"seed must be between 0 and {2**62 - 1}", "seed")
        hint_list = _hints_in(hints, info, lim, p)
        data = await _read_upload(image, lim.max_upload_bytes, "image", "the photo")
        style_data = await _read_upload(style, lim.max_upload_bytes, "style", "the style reference") \
            if has_style and style is not None else None
        job = _Job(model=info.name, method=method, samples=samples, seed=seed, fmt=format, image=data,
                   image_name=_client_stem(image.filename), style=style_data, hints=hint_list)
        queued = time.perf_counter()
        started = 0.0

        def work() -> _JobResult:
            nonlocal started
            started = time.perf_counter()
            return _run_job(p, request.app.state.render_size, lim, job, request.app.state.save_dir)

        try:
            (h, w), outputs, saved, notes = await request.app.state.queue.run(work)
        except QueueFull as exc:
            raise ApiError(503, str(exc), headers={"Retry-After": "2"}) from None
        finished = time.perf_counter()
        _, media_type, ext = _FORMATS[format]
        if output == "image":
            return Response(outputs[0][1], media_type=media_type, headers={
                "Content-Disposition": f'attachment; filename="{job.image_name}-color{ext}"',
                "X-Tinct-Model": info.name, "X-Tinct-Decode": method,
                **({"X-Tinct-Warning": "; ".join(notes)} if notes else {})})
        results = [SampleOut(index=k + 1, seed=s, media_type=media_type,
                             filename=f"{job.image_name}-color{f'-sample{k + 1}' if samples > 1 else ''}{ext}",
                             data=base64.b64encode(b).decode("ascii"))
                   for k, (s, b) in enumerate(outputs)]
        return ColorizeOut(model=info.name, decode=method, width=w, height=h, format=format,
                           queued_ms=round((started - queued) * 1000, 1),
                           elapsed_ms=round((finished - started) * 1000, 1), saved=saved, warnings=notes,
                           results=results)

    _add_photo_routes(app)
    return app


def _photo_job(request: Request, model: str, method: str | None = None) -> _PhotoJob:
    """A job on a kept photo with this app's model pool, photo store, limits and render size."""
    state = request.app.state
    return _PhotoJob(state.pool, state.photos, state.limits, state.render_size, model, method)


async def _queued(request: Request, fn: Callable[[], T]) -> T:
    """Run ``fn`` in the app's worker pool; 503 with Retry-After when the queue is full."""
    try:
        return await request.app.state.queue.run(fn)
    except QueueFull as exc:
        raise ApiError(503, str(exc), headers={"Retry-After": "2"}) from None


def _check_point(x: float, y: float, photo: StoredPhoto) -> None:
    """A suggestion's point must lie on the photo (pixels, as hints; 400 naming ``x`` or ``y``)."""
    for name, value, size in (("x", x, photo.width), ("y", y, photo.height)):
        if not 0 <= value < size + 0.5:
            raise ApiError(400, f"the point ({x:g}, {y:g}) is outside the {photo.width}x{photo.height} photo", name)


def _add_photo_routes(app: FastAPI) -> None:
    """The color-hint API: keep a photo, colorize it with hints, suggest colors at a point."""

    @app.post("/api/photos", response_model=PhotoOut, tags=["hints"], responses=_ERRORS)
    async def keep_photo(
        request: Request,
        image: Annotated[UploadFile, File(description="the photo (JPEG, PNG, TIFF, WebP or BMP; sniffed)")],
        model: Annotated[str | None, Form(description="the model to make it ready for (default: the server's)")] = None,
    ) -> PhotoOut:
        """Keep a photo on the server to colorize it again as its color hints change, without
        sending it again. Same limits as /api/colorize; the server keeps the most recent few
        (see `tinct serve` docs): an evicted id answers 404 and the photo must be sent again."""
        lim: Limits = request.app.state.limits
        info = request.app.state.pool.check(model)
        data = await _read_upload(image, lim.max_upload_bytes, "image", "the photo")
        stem = _client_stem(image.filename)
        job = _photo_job(request, info.name)
        photo = await _queued(request, lambda: _keep_photo(job, data, stem))
        return PhotoOut(id=photo.id, width=photo.width, height=photo.height, model=info.name)

    @app.post("/api/photos/{photo_id}/colorize", tags=["hints"], response_class=Response, responses={
        **_PHOTO_ERRORS, 200: {"content": {"image/png": {}, "image/jpeg": {}}, "description": "the image file"}})
    async def colorize_photo(request: Request, photo_id: str,
                             body: Annotated[PhotoColorizeIn | None, Body()] = None) -> Response:
        """A kept photo colorized with color hints: the image file itself. Only the network's
        head runs again when the photo was already made ready for the model."""
        body = body or PhotoColorizeIn()
        lim: Limits = request.app.state.limits
        pool: ModelPool = request.app.state.pool
        photo = request.app.state.photos.get(photo_id)
        info = pool.check(body.model)
        method = _check_decode(info, body.decode, 1, lim)
        if not 0 <= body.seed < 2**62:
            raise ApiError(400, f"seed must be between 0 and {2**62 - 1}", "seed")
        hints = _parse_hints(_hints_in(body.hints, info, lim, pool), photo.width, photo.height)
        job = _photo_job(request, info.name, method)
        data, notes = await _queued(request, lambda: _colorize_photo(job, photo, hints, body.format, body.seed))
        _, media_type, ext = _FORMATS[body.format]
        return Response(data, media_type=media_type, headers={
            "Content-Disposition": f'attachment; filename="{photo.stem}-color{ext}"',
            "Cache-Control": "no-store", "X-Tinct-Model": info.name, "X-Tinct-Decode": method,
            "X-Tinct-Hints": str(len(hints)), **({"X-Tinct-Warning": "; ".join(notes)} if notes else {})})

    @app.post("/api/photos/{photo_id}/suggest", response_model=SuggestOut, tags=["hints"], responses=_PHOTO_ERRORS)
    async def suggest_colors(request: Request, photo_id: str, body: SuggestIn) -> SuggestOut:
        """The colors the model finds likeliest at a point of a kept photo (a palette for a hint),
        most likely first, given the other hints. Histogram models only."""
        lim: Limits = request.app.state.limits
        pool: ModelPool = request.app.state.pool
        photo = request.app.state.photos.get(photo_id)
        info = pool.check(body.model)
        if not 1 <= body.k <= lim.max_suggestions:
            raise ApiError(400, f"k must be between 1 and {lim.max_suggestions}, got {body.k}", "k")
        _check_point(body.x, body.y, photo)
        hints = _parse_hints(_hints_in(body.hints, info, lim, pool), photo.width, photo.height)
        job = _photo_job(request, info.name)
        colors = await _queued(request, lambda: _suggest_colors(job, photo, body.x, body.y, body.k, hints))
        return SuggestOut(model=info.name, x=body.x, y=body.y, colors=[ColorOut(**c) for c in colors])


def _check_decode(info: ModelInfo, decode: str | None, samples: int, lim: Limits) -> str:
    if samples < 1:
        raise ApiError(400, f"samples must be at least 1, got {samples}", "samples")
    if samples > lim.max_samples:
        raise ApiError(400, f"samples must be at most {lim.max_samples}, got {samples}", "samples")
    if samples > 1 and not info.samples:
        raise ApiError(400, f"model {info.name!r} is deterministic (decoders: {', '.join(info.decode_methods)}); "
                            "it cannot draw several samples", "samples")
    method = decode or ("sample" if samples > 1 else info.default_decode)
    if method not in info.decode_methods:
        shown = method if len(method) <= 40 else method[:37] + "..."
        raise ApiError(400, f"model {info.name!r} decodes with {', '.join(info.decode_methods)}; got {shown!r}",
                       "decode")
    if samples > 1 and method != "sample":
        raise ApiError(400, f"several samples need decoder 'sample', not {method!r}", "decode")
    return method


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return JSONResponse({"error": exc.message, "field": exc.field}, status_code=exc.status, headers=exc.headers)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return JSONResponse({"error": str(exc.detail), "field": None}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(x) for x in first.get("loc", ()) if x not in ("body", "query")]
        field = loc[0] if loc else None
        msg = first.get("msg", "invalid request")
        if first.get("type") == "missing" and field:
            what = "JSON body" if "json" in request.headers.get("content-type", "") else "form"
            msg = f"the {what} has no {field!r} field" + (" (the photo to colorize)" if field == "image" else "")
        elif field:
            msg = f"{field}: {msg}"
        return JSONResponse({"error": msg, "field": field}, status_code=422)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # the details (which may name server paths) go to the log, not to the client
        log.error("unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the server's log", "field": None},
                            status_code=500)

    app.add_exception_handler(Exception, unexpected)
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


def _shipped_models(default: str | None) -> tuple[dict[str, Path], str]:
    """tinct's shipped weights as name -> path (aliases such as ``default`` folded into their
    targets) and the default model's name."""
    from ..weights import shipped_weights

    shipped = shipped_weights()
    models = {name: path for name, path in shipped.items() if path.stem == name}
    if not models:
        raise UsageError("tinct has no shipped weights yet; pass a .safetensors file (tinct serve --model PATH)")
    wanted = default or ("default" if "default" in shipped else next(iter(models)))
    if wanted not in shipped:
        raise UsageError(f"unknown model {wanted!r}; shipped models: {', '.join(sorted(shipped))}")
    return models, shipped[wanted].stem
