"""Write a corpus manifest without the held-out photos that an earlier ``--limit N`` scored.

    python scripts/fresh_manifest.py ~/data/corpus/manifest.jsonl --without-limit 400 \
        -o ~/data/corpus/manifest-fresh.jsonl

A choice made by looking at scores (the shipped default's decoder was chosen on the 400 val
photos ``tinct evaluate --data MANIFEST --limit 400`` picks) spends those photos: quality quoted
afterwards comes from the rest. This drops exactly the val photos that ``--limit N`` picks
(``tinct.evaluate.evenly_spaced`` over the val split in file order) and keeps every other line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tinct.evaluate import evenly_spaced


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--without-limit", type=int, required=True, help="N of the --limit N whose photos are dropped")
    ap.add_argument("-o", "--out", type=Path, required=True)
    args = ap.parse_args()
    lines = [line for line in args.manifest.expanduser().read_text().splitlines() if line.strip()]
    val = [i for i, line in enumerate(lines) if json.loads(line).get("split") == "val"]
    spent = set(evenly_spaced(val, args.without_limit))
    out = args.out.expanduser()
    out.write_text("".join(line + "\n" for i, line in enumerate(lines) if i not in spent))
    print(f"{out}: {len(lines) - len(spent)} photos ({len(val) - len(spent)} val), "
          f"without the {len(spent)} val photos --limit {args.without_limit} picks")


if __name__ == "__main__":
    main()
