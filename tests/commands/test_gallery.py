"""The batch gallery page (index.html): its data from the run folders, and the page itself in a real headless
Chromium, from the file system and over `python -m http.server`: no console errors, every card's media decodes,
filtering and sorting from the address, and a screenshot kept as an artifact."""
from __future__ import annotations

import functools
import html.parser
import http.server
import json
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastdream import cli
from fastdream.commands.batch_summary import write_summary
from fastdream.commands.gallery import PAGE, rebuild_gallery, run_card
from fastdream.export.turntable import write_video

SCREENSHOT_COPY = Path("/tmp/gallery.png")


def _frames(color, n=12, size=64):
    for i in range(n):
        frame = np.full((size, size, 3), 255, np.uint8)
        x = int(size / 2 + size / 4 * np.cos(2 * np.pi * i / n))
        frame[size // 2 - 10:size // 2 + 10, x - 10:x + 10] = color
        yield frame


def make_batch(out: Path) -> list[dict]:
    """A batch folder with one run per kind of media (mp4, gif, contact sheet, preview, none) and eval files."""
    kinds = [("a red cube", "mp4", "done"), ("a blue sphere", "png", "failed"),
             ("a green <b>torus</b> & \"friends\"", "gif", "skipped"), ("-h", "preview", "done"),
             ("a pending pyramid", None, "pending")]
    rows = []
    for i, (prompt, kind, status) in enumerate(kinds):
        d = out / f"run{i}-s0"
        (d / "video").mkdir(parents=True)
        color = (40 * i, 200 - 40 * i, 120)
        if kind == "mp4":
            assert write_video(list(_frames(color)), d / "video" / "turntable.mp4", fps=12).suffix == ".mp4"
        elif kind == "gif":
            write_video(list(_frames(color)), d / "video" / "turntable.gif", fps=12)
        elif kind == "png":
            Image.fromarray(np.concatenate(list(_frames(color, 4)), 1)).save(d / "video" / "turntable.png")
        elif kind == "preview":
            (d / "previews").mkdir()
            for step in (5, 10):
                Image.fromarray(next(_frames(color))).save(d / "previews" / f"step_{step:06d}.png")
        if kind is not None:
            (d / "mesh").mkdir()
            (d / "mesh" / "model.glb").write_bytes(b"glTF")
            (d / "config.yaml").write_text(f"prompt: {json.dumps(prompt)}\n")
            (d / "batch.log").write_text("log\n")
            rows_ = [{"step": 5, "loss": 1.0, "it_per_s": 2.0 + i}, {"step": 10, "loss": 0.5, "it_per_s": 4.0 + i},
                     {"step": 10, "psnr_heldout": 20.0 + i, "final": True}]
            (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows_) + "not json\n")
        rows.append({"prompt": prompt, "seed": 0, "run_dir": str(d), "status": status,
                     "seconds": 10.0 * (i + 1) if kind else None, "returncode": None, "gpu": None, "node": None})
    clip = {"runs": [{"run_dir": f"/elsewhere/{out.name}/run0-s0", "prompt": "a red cube", "seed": 0,
                      "r_at_1": {"tiny-clip": {"color": 0.75, "textureless": 0.5}}}]}
    (out / "eval_clip.json").write_text(json.dumps(clip))
    (out / "run1-s0" / "eval_truth.json").write_text(json.dumps({"chamfer_pct": 1.25, "volume_iou": 0.91}))
    return rows


def test_cards_read_what_the_run_folders_hold(tmp_path):
    rows = make_batch(tmp_path)
    cards = [run_card(tmp_path, r, [json.loads((tmp_path / "eval_clip.json").read_text())]) for r in rows]
    assert [c["media"] and (c["media"]["element"], c["media"]["label"]) for c in cards] == [
        ("video", "turntable"), ("img", "contact sheet"), ("img", "turntable"), ("img", "preview"), None]
    assert cards[3]["media"]["src"] == "run3-s0/previews/step_000010.png"  # the latest preview
    assert cards[0]["metrics"] == {"R@1 tiny-clip color": 0.75, "R@1 tiny-clip textureless": 0.5,
                                   "PSNR held-out (dB)": 20.0}
    assert cards[1]["metrics"] == {"chamfer_pct": 1.25, "volume_iou": 0.91, "PSNR held-out (dB)": 21.0}
    assert cards[2]["metrics"] == {"PSNR held-out (dB)": 22.0}  # nothing invented where no eval exists
    assert cards[4]["metrics"] == {} and cards[4]["steps"] is None and cards[4]["links"] == {}
    assert (cards[0]["steps"], cards[0]["steps_per_s"]) == (10, 3.0)
    assert cards[0]["links"] == {"GLB": "run0-s0/mesh/model.glb", "config": "run0-s0/config.yaml",
                                 "log": "run0-s0/batch.log", "metrics": "run0-s0/metrics.jsonl"}
    assert "contact sheet" in cards[1]["links"]


class _Page(html.parser.HTMLParser):
    """The rendered DOM's root attributes, cards and their media."""

    def __init__(self):
        super().__init__()
        self.root, self.cards = {}, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.root = a
        elif tag == "article" and "card" in a.get("class", ""):
            self.cards.append({"name": a["data-name"], "status": a["data-status"], "media": None, "none": False})
        elif tag in ("video", "img") and "turntable" in a.get("class", ""):
            self.cards[-1]["media"] = {"tag": tag, **a}
        elif tag == "span" and a.get("class") == "none":
            self.cards[-1]["none"] = True


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not found:
        pytest.fail("Chromium is needed for the gallery test and is not installed: apt-get install -y chromium "
                    "(.ci/run installs it)")
    return found


def _chromium_run(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
           "--mute-audio", f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=15000", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def _dom(tmp_path: Path, url: str) -> _Page:
    run = _chromium_run(tmp_path, url, "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    console = [ln for ln in run.stderr.splitlines() if ":CONSOLE" in ln]
    assert console == [], console  # the page logs nothing: any console line is an error or a warning
    page = _Page()
    page.feed(run.stdout)
    assert "data-errors" not in page.root, run.stdout[:3000]
    return page


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _check_every_card(page: _Page, rows: list[dict]) -> None:
    assert [c["name"] for c in page.cards] == sorted(Path(r["run_dir"]).name for r in rows) or \
        len(page.cards) == len(rows)
    assert page.root["data-cards"] == str(len(rows)) and page.root.get("data-media-failed", "0") == "0"
    for card in page.cards:
        if card["name"] == "run4-s0":
            assert card["media"] is None and card["none"]
            continue
        m = card["media"]
        assert m is not None and m.get("data-state") == "ok", card
        assert int(m["data-w"]) > 0 and int(m["data-h"]) > 0, card
    assert page.root["data-media-ok"] == str(len(rows) - 1)


@pytest.mark.slow
def test_page_in_headless_chromium(tmp_path):
    out = tmp_path / "batch"
    rows = make_batch(out)
    write_summary(out, rows)  # what every batch does: summary.json, summary.md, index.html
    assert (out / PAGE).is_file() and (out / "summary.json").is_file()
    page_url = (out / PAGE).as_uri()
    _check_every_card(_dom(tmp_path, page_url + "?eager"), rows)

    # the view in the address: filter by status, sort by time, newest first
    done = _dom(tmp_path, page_url + "?eager#status=done&sort=seconds&desc=1")
    assert [c["name"] for c in done.cards] == ["run3-s0", "run0-s0"] and done.root["data-shown"] == "2"
    # by metric range and prompt text (case-insensitive)
    ranged = _dom(tmp_path, page_url + "?eager#metric=chamfer_pct&min=1&max=2&q=BLUE")
    assert [c["name"] for c in ranged.cards] == ["run1-s0"]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _check_every_card(_dom(tmp_path, f"http://127.0.0.1:{server.server_address[1]}/{PAGE}?eager"), rows)
    finally:
        server.shutdown()

    shot = tmp_path / "gallery.png"
    run = _chromium_run(tmp_path, page_url + "?eager", f"--screenshot={shot}", "--window-size=1400,900")
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape[:2] == (900, 1400) and image.std() > 10  # not a blank page
    print(f"gallery screenshot: {shot}")
    try:
        shutil.copyfile(shot, SCREENSHOT_COPY)
    except OSError:
        pass


def test_report_rebuilds_the_page(tmp_path, capsys):
    rows = make_batch(tmp_path)
    write_summary(tmp_path, rows, with_gallery=False)
    assert cli.main(["batch", "--report", str(tmp_path)]) == 0
    assert f"wrote {tmp_path / PAGE}" in capsys.readouterr().out
    text = (tmp_path / PAGE).read_text()
    assert "<b>torus" not in text and "\\u003cb\\u003etorus" in text  # data is escaped inside the script
    assert "http://" not in text.replace("http.server", "") and "https://" not in text  # nothing from the network
    (tmp_path / "summary.json").unlink()  # without a summary: the run folders themselves
    (tmp_path / "run0-s0" / "DONE.json").write_text(json.dumps({"prompt": "a red cube", "seed": 0, "seconds": 3}))
    path = rebuild_gallery(tmp_path)
    data = path.read_text()
    assert "run0-s0" in data and "run3-s0" in data and "run4-s0" not in data  # run4 has no config, no marker
