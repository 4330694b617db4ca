"""Defaults shared by the command line and the library, importable without torch (``tinct --help``)."""

DEFAULT_RENDER_SIZE = 384  # longer side of the network input, in pixels
MIN_RENDER_SIZE = 32
DEFAULT_OPSET = 17         # ONNX opset of exports
MIN_OPSET = 11
HINT_MODEL = "tinct-lite2-hints"  # the shipped model that takes color hints (tinct colorize --hints, tinct suggest)


def check_render_size(render_size: int) -> None:
    """A render size below MIN_RENDER_SIZE is a one-line error (the Colorizer's and the Ray driver's check)."""
    if render_size < MIN_RENDER_SIZE:
        from .errors import UsageError

        raise UsageError(f"render size must be at least {MIN_RENDER_SIZE} pixels, got {render_size}")
