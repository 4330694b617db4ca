"""Defaults shared by the command line and the library, importable without torch (``tinct --help``)."""

DEFAULT_RENDER_SIZE = 384  # longer side of the network input, in pixels
DEFAULT_OPSET = 17         # ONNX opset of exports
MIN_OPSET = 11
HINT_MODEL = "tinct-lite2-hints"  # the shipped model that takes color hints (tinct colorize --hints, tinct suggest)
