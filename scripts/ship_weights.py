"""Ship a trained run's weights as a zoo model, optionally with a chosen default decoder.

    python scripts/ship_weights.py runs/NAME/final.safetensors --name NAME
        [--decode annealed --temperature 0.6 --why "chosen on ..."] [--default]

Copies the tensors unchanged into src/tinct/weights/NAME.safetensors. ``--decode`` and
``--temperature`` become the model's own defaults (the ``decode`` and ``temperature`` keys of a
histogram model's config), so that `tinct colorize` and the API use them without flags;
``--why`` records where that choice was measured. ``--default`` points the ``default`` alias at it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors import safe_open

from tinct.models.base import build_model
from tinct.weights import WEIGHTS_DIR, load_weights, save_weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", type=Path)
    ap.add_argument("--name", required=True)
    ap.add_argument("--decode", default=None)
    ap.add_argument("--temperature", type=float, default=None)
    ap.add_argument("--why", default=None, help="where the decoding was chosen (recorded in the metadata)")
    ap.add_argument("--default", action="store_true", help="make it the `default` alias")
    args = ap.parse_args()

    model = load_weights(args.weights)
    meta = dict(model.metadata)
    config = dict(meta["config"])
    if args.decode is not None:
        config["decode"] = args.decode
    if args.temperature is not None:
        config["temperature"] = args.temperature
    shipped = build_model(meta["arch"], **config)  # checks the decoder against the model's own list
    shipped.load_state_dict(model.state_dict())
    with safe_open(str(args.weights), framework="pt") as f:
        half = any(f.get_slice(k).get_dtype() == "F16" for k in f.keys())
    meta.pop("arch", None)
    meta.pop("config", None)
    meta.pop("packaged", None)
    meta["name"] = args.name
    if args.why:
        meta["decoding"] = {"decode": config.get("decode"), "temperature": config.get("temperature"), "why": args.why}
    out = save_weights(shipped.eval(), WEIGHTS_DIR / f"{args.name}.safetensors", meta, half=half)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    if args.default:
        aliases_path = WEIGHTS_DIR / "aliases.json"
        aliases = json.loads(aliases_path.read_text()) if aliases_path.is_file() else {}
        aliases["default"] = args.name
        aliases_path.write_text(json.dumps(aliases) + "\n")
        print(f"default -> {args.name}")


if __name__ == "__main__":
    main()
