"""``tinct serve``: a local web page (and HTTP API) for colorizing photos.

Wiring into ``tinct.cli``: ``from .serve import add_parser; add_parser(sub)`` next to the
other sub-commands. The web dependencies (FastAPI, uvicorn, python-multipart) are imported
only when the command runs, so ``tinct`` works without the ``serve`` extra; without it the
command prints one line saying what to install and exits 2.

Python use::

    from tinct.serve import create_app          # needs the serve extra
    app = create_app(models={"mine": "mine.safetensors"})
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
from pathlib import Path
from typing import Any

from ..errors import UsageError

__all__ = ["add_parser", "cmd_serve", "create_app", "parse_model_specs"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_MISSING = ("tinct serve needs the web extra: pip install 'tinct[serve]' "
            "(fastapi, uvicorn, python-multipart)")


def create_app(*args: Any, **kwargs: Any) -> Any:
    """Build the FastAPI app (see :func:`tinct.serve.app.create_app`)."""
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)


def add_parser(subparsers: Any) -> None:
    """Add the ``serve`` sub-command to an argparse ``add_subparsers()`` object."""
    s = subparsers.add_parser(
        "serve", help="a local web page for colorizing photos",
        description="Serve a web page (and its HTTP API, described at /openapi.json) for colorizing photos: "
                    "drop photos, compare before/after, download. Localhost only by default; works offline. "
                    "Results are sent back to the browser and not kept on disk unless --save-dir is given.")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this computer only; 0.0.0.0 exposes it to the network)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    s.add_argument("--model", action="append", metavar="NAME|PATH|NAME=PATH",
                   help="a model to offer (repeatable; the first is the default): a shipped name, a .safetensors "
                        "file, or NAME=FILE to list it under NAME (default: every shipped model)")
    s.add_argument("--render-size", type=int, default=384, help="network input size, longer side (default 384)")
    s.add_argument("--max-upload-mb", type=float, default=25.0, help="largest accepted file in MB (default 25)")
    s.add_argument("--max-pixels", type=int, default=40_000_000,
                   help="largest accepted image in pixels, checked before decoding (default 40000000)")
    s.add_argument("--max-samples", type=int, default=8, help="most samples per photo (default 8)")
    s.add_argument("--queue", type=int, default=32, help="requests that may wait for the worker (default 32)")
    s.add_argument("--save-dir", metavar="DIR", help="also write every result into DIR (default: keep nothing)")
    s.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    s.set_defaults(func=cmd_serve)


def parse_model_specs(specs: list[str] | None) -> tuple[dict[str, Path] | None, str | None]:
    """``--model`` values -> (name -> weights path, default name); (None, None) for the shipped set.

    Raises ValueError / FileNotFoundError with one-line messages.
    """
    if not specs:
        return None, None
    from ..weights import resolve, shipped_weights

    shipped = shipped_weights()
    models: dict[str, Path] = {}
    for spec in specs:
        name, sep, target = spec.partition("=")
        if sep and not Path(spec).is_file():
            if not name or not target:
                raise UsageError(f"--model {spec!r}: use NAME=FILE")
            path = resolve(target)
        else:
            path = resolve(spec)
            name = spec if spec in shipped else path.stem
        if name in models and models[name] != path:
            raise UsageError(f"--model: two models are named {name!r}; use NAME=FILE to rename one")
        models[name] = path
    return models, next(iter(models))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the server until Ctrl+C. Returns an exit code; user errors are one line on stderr."""
    try:
        import uvicorn

        from .app import Limits
        from .app import create_app as _create_app
    except ImportError:
        print(f"tinct: error: {_MISSING}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if not 0 <= args.port <= 65535:
            raise UsageError(f"--port must be 0..65535, got {args.port}")
        if args.render_size < 32:
            raise UsageError(f"--render-size must be at least 32, got {args.render_size}")
        limits = Limits(max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), max_pixels=args.max_pixels,
                        max_samples=args.max_samples, max_queue=args.queue)
        models, default = parse_model_specs(args.model)
        loopback = _is_loopback(args.host)
        app = _create_app(models, default_model=default, limits=limits, render_size=args.render_size,
                          device=args.device, save_dir=args.save_dir,
                          allowed_hosts=["127.0.0.1", "localhost"] if args.host in ("127.0.0.1", "localhost") else None)
        sock = _bind(args.host, args.port)
    except (ValueError, FileNotFoundError, OSError, RuntimeError) as exc:  # RuntimeError: e.g. no python-multipart
        print(f"tinct: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    port = sock.getsockname()[1]
    shown = f"[{args.host}]" if ":" in args.host else args.host
    pool = app.state.pool
    print(f"tinct serve: http://{shown}:{port}/  (models: {', '.join(pool.infos)}; default {pool.default}; "
          f"Ctrl+C to stop)", file=sys.stderr)
    if not loopback:
        print(f"tinct serve: warning: listening on {args.host}, so other computers on the network can use it",
              file=sys.stderr)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return EXIT_OK
