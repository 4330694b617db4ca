"""One helper for the docs figures: paste rows of images, each scaled to one height, with captions."""

from __future__ import annotations

from PIL import Image, ImageDraw

GAP, CAPTION = 8, 16


def grid(rows: list[list[Image.Image]], captions: list[list[str]], height: int = 220) -> Image.Image:
    """rows[r][c] (any sizes) -> one white canvas; each cell scaled to ``height``, captioned above."""
    scaled = [[im.convert("RGB").resize((round(im.width * height / im.height), height)) for im in row] for row in rows]
    width = max(sum(im.width for im in row) + GAP * (len(row) - 1) for row in scaled)
    canvas = Image.new("RGB", (width, len(rows) * (height + CAPTION + GAP) - GAP), "white")
    draw = ImageDraw.Draw(canvas)
    y = 0
    for row, texts in zip(scaled, captions):
        x = 0
        for im, text in zip(row, texts):
            draw.text((x + 2, y + 2), text, fill="black")
            canvas.paste(im, (x, y + CAPTION))
            x += im.width + GAP
        y += height + CAPTION + GAP
    return canvas
