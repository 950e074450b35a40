"""report.html for a tiny evaluation: structure (players, images, links, table) and a load in headless Chromium."""

from __future__ import annotations

import io
import math
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
import soundfile as sf
from matplotlib.image import imread

from taae.eval.examples import IDENTITY, card_systems, collect_examples, format_bitrate
from taae.eval.results import EvalReport, FileResult, example_path, summarize_system
from tests.codec.test_codec import tiny_model, write_checkpoint
from tests.conftest import synth_speech

FILES = {"utt one.wav": 1.0, "b#2.wav": 0.6}  # a space and a '#': links must be quoted to resolve
ROW_ORDER_JS = 'Array.from(document.querySelectorAll("tbody tr")).map(r => r.dataset.system)'


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    """evaluate() on two short files: every taae preset of a tiny random model, identity and µ-law."""
    from taae.eval.run import EvalConfig, evaluate

    root = tmp_path_factory.mktemp("eval")
    (root / "data").mkdir()
    for i, (name, seconds) in enumerate(FILES.items()):
        sf.write(root / "data" / name, synth_speech(seconds, seed=i)[0].numpy(), 16000)
    ckpt = write_checkpoint(root / "last.ckpt", tiny_model())
    cfg = EvalConfig(data=str(root / "data"), out=str(root / "out"), checkpoint=str(ckpt),
                     references="identity,mulaw", workers=0, examples=len(FILES), mos=False)
    return evaluate(cfg)


class Page(HTMLParser):
    """The parts of report.html the tests look at."""

    def __init__(self, text: str):
        super().__init__()
        self.links: list[str] = []
        self.rows: list[str] = []
        self.examples: list[dict] = []  # {file, cards: [{system, audio, img, rate}]}
        self._in, self._card = None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if key in a:
                self.links.append(a[key])
        if tag == "tr" and "data-system" in a:
            self.rows.append(a["data-system"])
        elif tag == "section" and "data-file" in a:
            self.examples.append({"file": a["data-file"], "cards": []})
        elif tag == "figure":
            self._card = {"system": a["data-system"], "audio": [], "img": [], "rate": ""}
            self.examples[-1]["cards"].append(self._card)
        elif tag == "audio" and self._card is not None:
            self._card["audio"].append(a["src"])
        elif tag == "img" and self._card is not None:
            self._card["img"].append(a["src"])
        self._in = a.get("class")

    def handle_data(self, data):
        if self._in == "rate" and self._card is not None:
            self._card["rate"] += data

    def handle_endtag(self, tag):
        self._in = None
        if tag == "figure":
            self._card = None


def test_report_html_structure(evaluation):
    out = evaluation.paths["html"].parent
    report = evaluation.report
    page = Page(evaluation.paths["html"].read_text(encoding="utf-8"))
    names = [s.name for s in report.systems]
    assert {"taae_native", "taae_400bps", "taae_700bps", "taae_1000bps", "identity", "mulaw8"} <= set(names)

    # The table holds every system once.
    assert sorted(page.rows) == sorted(names)
    # One block per example file, one card per system (identity is the reference card), one player per card.
    assert [e["file"] for e in page.examples] == list(sorted(FILES))
    expected = ["reference"] + [s.name for s in card_systems(report)]
    assert expected[1:5] == ["taae_400bps", "taae_native", "taae_700bps", "taae_1000bps"]  # presets by bitrate
    for index, example in enumerate(page.examples):
        cards = example["cards"]
        assert [c["system"] for c in cards] == expected
        assert all(len(c["audio"]) == 1 and len(c["img"]) == 1 for c in cards)
        assert len(cards) == len(names)  # a player per system: identity's is the reference
        for card in cards:
            system = card["system"]
            assert unquote(card["audio"][0]) == example_path(system, index, example["file"]).as_posix()
            if system != "reference":
                assert card["rate"] == format_bitrate(report.systems[names.index(system)].bitrate)
        # Spectrograms of one file line up: same bands and frames for every system.
        shapes = {imread(out / unquote(c["img"][0])).shape for c in cards}
        assert len(shapes) == 1

    # Every link is relative, local and exists (no network, opens from disk).
    assert "rate_quality.png" in page.links and "spectrogram_scale.png" in page.links
    for link in page.links:
        parsed = urlparse(link)
        if parsed.scheme == "data":
            continue
        assert not parsed.scheme and not parsed.netloc and not link.startswith("/"), link
        assert not parsed.fragment and not parsed.query, link  # a raw '#' or '?' in a file name cuts the path
        assert (out / unquote(link)).is_file(), link
    assert "![bitrate vs quality](rate_quality.png)" in evaluation.paths["markdown"].read_text(encoding="utf-8")


def _write(path: Path, wav: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wav, 16000)


def test_examples_share_one_colour_scale_and_show_failures(tmp_path):
    """A system 20 dB quieter than the reference looks darker; a failed system has no player but its error."""
    ref = 0.5 * synth_speech(0.5)[0].numpy()
    _write(tmp_path / example_path("reference", 0, "a.wav"), ref)
    _write(tmp_path / example_path("quiet", 0, "a.wav"), 0.1 * ref)
    _write(tmp_path / example_path("broken", 0, "a.wav"), ref)  # left by an earlier run: must not be shown
    results = [FileResult("a.wav", "quiet", 0.5, {"pesq_wb": 1.234}),
               FileResult("a.wav", "broken", 0.5, {"pesq_wb": math.nan}, {"system": "RuntimeError: boom"}),
               FileResult("a.wav", IDENTITY, 0.5, {"pesq_wb": 4.64})]
    systems = [summarize_system(n, results, "codec", 700.0, ["pesq_wb"]) for n in ("quiet", "broken")]
    report = EvalReport({"examples": 1}, systems + [summarize_system(IDENTITY, results, metrics=["pesq_wb"])],
                        ["pesq_wb"])
    (example,) = collect_examples(report, results, tmp_path)
    ref_card, *others = example.cards
    cards = {c.system: c for c in others}
    assert ref_card.title == "reference (= identity)" and ref_card.scores == "PESQ-WB 4.64"
    assert cards["quiet"].scores == "PESQ-WB 1.23" and cards["broken"].wav is None
    assert cards["broken"].error == "RuntimeError: boom" and cards["broken"].png is None

    def peak(card):
        return imread(io.BytesIO((tmp_path / unquote(card.png)).read_bytes()))[..., :3].sum(-1).max()

    assert peak(cards["quiet"]) < peak(ref_card) - 0.3  # one scale: the quiet output cannot reach the top colour


@pytest.mark.slow
def test_report_in_headless_chromium(evaluation):
    from tests.scripts import load_script

    browser_module = load_script("browser")
    BrowserError, Chromium = browser_module.BrowserError, browser_module.Chromium

    try:
        browser = Chromium()
    except BrowserError as err:
        pytest.skip(str(err))
    out = evaluation.paths["html"].parent
    shot = out / "report.png"  # next to the report
    broken = out / "broken.html"
    text = evaluation.paths["html"].read_text(encoding="utf-8")
    first_wav = Page(text).examples[0]["cards"][1]["audio"][0]
    broken.write_text(text.replace(first_wav, "examples/missing.wav").replace(
        "</body>", '<img src="http://127.0.0.1:9/x.png"></body>'), encoding="utf-8")
    with browser:
        good = browser.check(evaluation.paths["html"].as_uri(), screenshot=shot)
        # The table sorts by a clicked column: SI-SDR ascending, then descending.
        col = browser.evaluate('Array.from(document.querySelectorAll("thead th")).findIndex('
                               'h => h.textContent.startsWith("SI-SDR"))')
        order = []
        for _ in range(2):
            browser.evaluate(f'document.querySelectorAll("thead th")[{col}].click()')
            order.append(browser.evaluate(ROW_ORDER_JS))
        bad = browser.check(broken.as_uri())

    assert good.console_errors == [], good.console_errors
    assert good.broken_images == []
    players = len(Page(text).examples) * len(evaluation.report.systems)
    assert len(good.media) == players and all(m["ready_state"] > 0 and m["error"] is None for m in good.media)
    assert good.ok
    assert shot.is_file() and imread(shot).shape[1] == 1400  # the whole page at the window's width

    si_sdr = {s.name: s.metrics["si_sdr"].mean for s in evaluation.report.systems}
    assert sorted(order[0]) == sorted(si_sdr)
    assert [si_sdr[n] for n in order[0]] == sorted(si_sdr.values())  # ties (presets of one latent) in any order
    assert [si_sdr[n] for n in order[1]] == sorted(si_sdr.values(), reverse=True)

    # The same checks catch a missing WAV and a request off the machine (blocked by the page's policy).
    assert not bad.ok
    assert any("missing.wav" in m["src"] and (m["error"] or m["ready_state"] == 0) for m in bad.media)
    assert any("missing.wav" in e for e in bad.console_errors), bad.console_errors
    assert any("Content Security Policy" in e for e in bad.console_errors), bad.console_errors
