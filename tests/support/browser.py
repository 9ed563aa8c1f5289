"""Headless Chromium (Debian's `chromium`) for pages we generate: a screenshot to look at, with
every host name unresolvable, so a page that needs the network shows it."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from PIL import Image, ImageChops

from tests.support import need_binary


def screenshot(page: Path, png: Path, width: int = 1300, height: int = 2400) -> Path:
    """Render `page` at `width` x `height` and save it, cropped to what is not background."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        subprocess.run(
            [
                need_binary("chromium"),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--host-resolver-rules=MAP * ~NOTFOUND",  # any lookup fails: nothing may load
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={png}",
                page.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    image = Image.open(png).convert("RGB")
    background = Image.new("RGB", image.size, image.getpixel((0, 0)))
    box = ImageChops.difference(image, background).getbbox()
    if box:
        _, _, right, bottom = box
        image.crop((0, 0, min(right + 20, width), min(bottom + 20, height))).save(png)
    return png
