"""The report page in a real browser: headless Chromium renders the verdict and every plot from the single file,
with no network."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from clusterproof.report import build
from tests.test_report_sample import sample_transport, write_sample

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian package 'chromium')")

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--window-size=1280,2000",
]


def _chromium(profile: Path, *args: str) -> str:
    """Run headless Chromium in its own process group; on a timeout the whole group (zygote, renderers) is
    killed by its id so nothing is left behind."""
    assert CHROMIUM is not None
    proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, err[-2000:]
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str, Path]:
    """Yields: (report dir, number of plots, dumped DOM, screenshot path). Scope: module (one browser run)."""
    base = tmp_path_factory.mktemp("chromium")
    run = write_sample(base / "run", transport=sample_transport())
    summary = build(run)
    url = summary.html_path.resolve().as_uri()
    dom = _chromium(base / "profile-dom", "--dump-dom", url)
    shot = base / "shot.png"
    _chromium(base / "profile-shot", f"--screenshot={shot}", url)
    return run, len(summary.plots), dom, shot


def test_dom_has_the_verdict_and_every_plot_as_an_embedded_image(rendered: tuple[Path, int, str, Path]) -> None:
    _, plots, dom, _ = rendered
    assert re.search(r'<section class="verdict fail" id="verdict"><div class="word">FAIL</div>', dom)
    assert 'id="standin"' in dom and "CPU stand-in" in dom
    assert 'id="scorecard"' in dom and "4-node NCCL test within specification" in dom
    sources = re.findall(r'<img [^>]*src="([^"]*)"', dom)
    assert plots == 3 and len(sources) == plots
    assert all(src.startswith("data:image/png;base64,") and len(src) > 10_000 for src in sources)
    assert "<script" not in dom


def test_screenshot_is_a_rendered_page_not_a_blank_one(rendered: tuple[Path, int, str, Path]) -> None:
    _, _, _, shot = rendered
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1280)
    assert float(pixels.std()) > 0.05
    # The verdict banner's red is on screen near the top, and the page has many distinct colours (plots).
    top = pixels[:400]
    red = (top[..., 0] > 0.7) & (top[..., 1] < 0.3) & (top[..., 2] < 0.3)
    assert red.sum() > 500
    colours = np.unique((pixels[::4, ::4] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 200
