"""``python -m tinct.serve [options]``: the same as ``tinct serve [options]``."""

from __future__ import annotations

import argparse
import logging
import sys

from . import add_parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``tinct serve`` options and run the server."""
    parser = argparse.ArgumentParser(prog="python -m tinct.serve")
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    sub.choices["serve"].prog = "python -m tinct.serve"
    args = parser.parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
