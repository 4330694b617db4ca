"""Regenerate examples/*.jpg: grayscale copies of public-domain / CC0 images scikit-image ships."""

from pathlib import Path

import skimage.data
from PIL import Image

OUT = Path(__file__).resolve().parent.parent / "examples"
for name in ("astronaut", "chelsea", "coffee", "rocket"):
    Image.fromarray(getattr(skimage.data, name)()).convert("L").save(OUT / f"{name}.jpg", quality=92)
    print(OUT / f"{name}.jpg")
