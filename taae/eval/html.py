"""The listening report ``report.html``: read, hear and see every system of an evaluation side by side.

The page lives in the evaluation folder and links only to files beside it, by relative URLs, so it opens from disk
with no network and the folder can be copied or served as a whole:

    report.html                          this page
    rate_quality.png                     bitrate vs PESQ-WB / STOI / mel / DNSMOS (``taae.eval.plots``)
    spectrogram_scale.png                the colour bar shared by every spectrogram of the page
    examples/reference/NNN_<stem>.wav    the preprocessed input that every system coded
    examples/<system>/NNN_<stem>.wav     its decoded output; NNN_<stem>.png beside it is its log-mel image

Sections: the metric table (sortable by any column, with a few lines of plain JavaScript and no framework) and
the notes of ``report.md``; the bitrate-vs-quality plot; one block per example utterance with, for the reference
and every system, a log-mel image, the bitrate, an audio player and that file's scores (``taae.eval.examples``);
the run's settings.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from taae.eval.examples import CAPTION_METRICS, COLOURBAR_PNG, Example, ExampleCard, collect_examples
from taae.eval.plots import MelImageConfig
from taae.eval.results import PAPER_NOTE, EvalReport, FileResult, paper_row, report_notes, table_header, table_rows
from taae.io.atomic import write_text

HTML_NAME = "report.html"


@dataclass
class HtmlConfig:
    """What the listening page shows."""

    title: str = "taae listening report"
    mel: MelImageConfig = field(default_factory=MelImageConfig)
    caption_metrics: tuple[str, ...] = CAPTION_METRICS
    """Per-file scores printed on each example card (those the evaluation computed)."""


# ------------------------------------------------------------------------------------------------------------
# rendering


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _inline(text: str) -> str:
    """Escape a note of ``report_notes`` and turn its Markdown `code` spans into <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(text))


def _table(report: EvalReport) -> str:
    head = "".join(f'<th scope="col" title="sort by {_e(h)}">{_e(h)}</th>' for h in table_header(report))
    body = []
    for row in table_rows(report):
        cells = "".join(f'<td data-value="{_e("" if c.value is None else c.value)}">{_e(c.text)}</td>' for c in row)
        body.append(f'<tr data-system="{_e(row[0].text)}">{cells}</tr>')
    paper = "".join(f"<td>{_e(c)}</td>" for c in paper_row(report))
    return (f'<div class="table-wrap"><table class="results sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody><tfoot><tr class="paper">{paper}</tr></tfoot></table></div>')


def _notes(report: EvalReport) -> str:
    paras, items = [], []
    for note in report_notes(report):
        if note.startswith("- "):
            items.append(f"<li>{_inline(note[2:])}</li>")
        else:
            paras.append(f"<p>{_inline(note)}</p>")
    listed = f"<ul>{''.join(items)}</ul>" if items else ""
    return "".join(paras) + listed + f'<p class="paper-note">{_inline(PAPER_NOTE)} (last row of the table)</p>'


def _card(card: ExampleCard) -> str:
    parts = [f'<figure class="card" data-system="{_e(card.system)}">',
             f'<figcaption class="name">{_e(card.title)}</figcaption>']
    if card.png:
        parts.append(f'<img class="spec" src="{_e(card.png)}" alt="log-mel spectrogram, {_e(card.title)}">')
    parts.append(f'<div class="rate">{_e(card.bitrate)}</div>')
    if card.wav:
        parts.append(f'<audio controls preload="metadata" src="{_e(card.wav)}"></audio>')
    if card.error:
        parts.append(f'<div class="error">{_e(card.error)}</div>')
    if card.scores:
        parts.append(f'<div class="scores">{_e(card.scores)}</div>')
    return "".join(parts) + "</figure>"


def _examples(examples: list[Example], cfg: HtmlConfig) -> str:
    if not examples:
        return "<p>No examples were saved (<code>--examples 0</code>).</p>"
    mel = cfg.mel
    intro = (f'<p>Log-mel power, {mel.n_mels} bands from 0 Hz to Nyquist, {mel.window_seconds * 1000:g} ms window, '
             f'{mel.hop_seconds * 1000:g} ms hop; one colour scale for every image on this page, its top the loudest '
             f'reference bin:</p><img class="colourbar" src="{COLOURBAR_PNG}" alt="colour scale in dB">')
    blocks = []
    for ex in examples:
        cards = "".join(_card(c) for c in ex.cards)
        blocks.append(f'<section class="example" data-file="{_e(ex.file)}"><h3>{_e(ex.file)} '
                      f'<small>{ex.duration:.2f} s</small></h3><div class="cards">{cards}</div></section>')
    return intro + "".join(blocks)


CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5rem auto; max-width: 1400px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } .meta { color: #555; margin-top: 0; }
.table-wrap { overflow-x: auto; }
table.results { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: .5rem 0; }
table.results td { white-space: nowrap; }
table.results th, table.results td { border-bottom: 1px solid #ddd; padding: .25rem .6rem; text-align: right; }
table.results th:first-child, table.results td:first-child { text-align: left; }
table.results th { cursor: pointer; background: #f4f4f4; position: sticky; top: 0; user-select: none; }
table.results th[aria-sort=ascending]::after { content: " ▲"; } th[aria-sort=descending]::after { content: " ▼"; }
tr.paper td { color: #777; font-style: italic; border-top: 2px solid #ccc; }
.figure { max-width: 100%; } .colourbar { width: 420px; max-width: 100%; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: .75rem; }
.card { margin: 0; padding: .5rem; border: 1px solid #ddd; border-radius: 6px; background: #fafafa; }
.card[data-system=reference] { border-color: #888; background: #f0f0f0; }
.name { font-weight: 600; overflow-wrap: anywhere; } .rate { color: #444; font-size: .9em; }
.spec { display: block; width: 100%; height: 96px; margin: .3rem 0; background: #000; }
audio { width: 100%; height: 32px; } .scores { color: #555; font-size: .85em; } .error { color: #b00; }
code, pre { font-size: .9em; background: #f4f4f4; }
"""

# Sorts the table by a clicked column; numbers numerically, names alphabetically, missing values ("—") last.
SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
      table.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
      var body = table.tBodies[0];
      Array.from(body.rows).sort(function (a, b) {
        var x = a.cells[col].dataset.value, y = b.cells[col].dataset.value;
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        var nx = Number(x), ny = Number(y);
        return dir * (isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny);
      }).forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""

# Everything the page loads is a file beside it; the policy makes any other request fail instead of leaving.
CSP = ("default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; "
       "script-src 'unsafe-inline'")


def render_html(report: EvalReport, examples: list[Example], config: HtmlConfig | None = None,
                figure: str | None = None) -> str:
    """The page as a string; ``figure`` is the bitrate-vs-quality PNG's URL (None: no plot section)."""
    cfg = config or HtmlConfig()
    st = report.settings
    meta = [f"{st.get('num_files', '?')} files of <code>{_e(st.get('data', '?'))}</code>"]
    for key in ("checkpoint", "model_hash", "date", "git_commit"):
        if st.get(key):
            meta.append(f"{key.replace('_', ' ')} <code>{_e(st[key])}</code>")
    plot = (f'<h2>Bitrate and quality</h2><img class="figure" src="{_e(figure)}" '
            'alt="bitrate against quality, one point per system">' if figure else "")
    settings = json.dumps(st, indent=2, ensure_ascii=False, default=str)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><title>{_e(cfg.title)}</title><style>{CSS}</style></head>
<body>
<h1>{_e(cfg.title)}</h1><p class="meta">{" · ".join(meta)}</p>
<h2>Results</h2><p class="meta">Click a column title to sort by it.</p>
{_table(report)}
{_notes(report)}
{plot}
<h2>Listen</h2>
{_examples(examples, cfg)}
<h2>Settings</h2><details><summary>run settings (as in report.json)</summary><pre>{_e(settings)}</pre></details>
<script>{SORT_JS}</script>
</body></html>
"""


def write_html(report: EvalReport, results: list[FileResult], out_dir: str | Path, figure: str | None = None,
               config: HtmlConfig | None = None) -> Path:
    """Write ``report.html`` (and the spectrogram PNGs it shows) into ``out_dir``; returns the page's path.

    Args:
        figure: URL, relative to ``out_dir``, of the bitrate-vs-quality PNG already written there (None: no plot).
    The examples are those that ``taae.eval.run`` saved under ``examples/``.
    """
    out = Path(out_dir)
    cfg = config or HtmlConfig()
    examples = collect_examples(report, results, out, cfg.mel, cfg.caption_metrics)
    return write_text(out / HTML_NAME, render_html(report, examples, cfg, figure))
