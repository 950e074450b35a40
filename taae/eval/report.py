"""Writing an evaluation: ``report.json``, ``report.md`` (a paper-ready table), ``per_file.csv``,
``per_utterance.jsonl``, and through :mod:`taae.eval.plots` / :mod:`taae.eval.html` the bitrate-vs-quality plot and
the listening page. The data they show is :mod:`taae.eval.results`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict
from pathlib import Path

from taae.eval.metrics import METRICS
from taae.eval.results import (
    PAPER_NOTE,
    RATE_QUALITY_PNG,
    EvalReport,
    FileResult,
    paper_row,
    report_notes,
    table_header,
    table_rows,
)
from taae.io.atomic import write_many, write_text


def _jsonable(obj):
    # JSON has no NaN/inf: write null so that every parser reads the file.
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def json_text(report: EvalReport) -> str:
    data = {"settings": report.settings, "metrics": report.metrics, "notes": report.notes,
            "systems": {s.name: asdict(s) for s in report.sorted_systems()}}
    return json.dumps(_jsonable(data), indent=2, ensure_ascii=False) + "\n"


def write_json(report: EvalReport, path: str | Path) -> None:
    write_text(path, json_text(report))


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown_table(report: EvalReport) -> str:
    """The results table (rows by bitrate) plus the protocol note, failures and the paper's row for context."""
    head = table_header(report)
    rule = "|" + "---|" * len(head)
    lines = [_md_row(head), rule] + [_md_row([c.text for c in row]) for row in table_rows(report)]
    out = ["\n".join(lines), "", *report_notes(report)]
    out += ["", PAPER_NOTE, "", "\n".join([_md_row(head), rule, _md_row(paper_row(report))])]
    return "\n".join(out) + "\n"


def markdown_text(report: EvalReport, figure: str | None = None) -> str:
    """``markdown_table``, then the bitrate-vs-quality figure when given (a path relative to the report)."""
    return markdown_table(report) + (f"\n![bitrate vs quality]({figure})\n" if figure else "")


def write_markdown(report: EvalReport, path: str | Path, figure: str | None = None) -> None:
    write_text(path, markdown_text(report, figure))


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str) -> str:
    """A text cell a spreadsheet shows as text: one that starts like a formula gets a leading ``'`` (OWASP's CSV
    injection advice), so a file named ``=HYPERLINK(...)`` is not evaluated when per_file.csv is opened."""
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def csv_text(results: list[FileResult], metrics: list[str] | None = None) -> str:
    """One row per file × system, metric values (empty for NaN) and error messages; text cells that start like a
    formula are escaped (:func:`_cell`)."""
    metrics = list(metrics if metrics is not None else METRICS)
    cols = ["file", "system", "duration", *metrics, "length_change", "encode_seconds", "decode_seconds", "seconds",
            "errors"]
    with io.StringIO(newline="") as f:
        writer = csv.writer(f)
        writer.writerow(cols)
        for r in results:
            vals = [r.values.get(m, math.nan) for m in metrics]
            writer.writerow([_cell(str(r.file)), _cell(str(r.system)), f"{r.duration:.3f}",
                             *["" if not math.isfinite(v) else f"{v:.6g}" for v in vals],
                             r.length_change, f"{r.encode_seconds:.6f}", f"{r.decode_seconds:.6f}",
                             f"{r.seconds:.6f}", _cell("; ".join(f"{k}: {v}" for k, v in r.errors.items()))])
        return f.getvalue()


def jsonl_text(report: EvalReport, results: list[FileResult]) -> str:
    """One JSON object per line and (file, system): every metric value (null for NaN, absent when not computed),
    the system's kind and nominal bitrate, errors and ASR texts, for VERSA- or Codec-SUPERB-style tooling."""
    systems = {s.name: s for s in report.systems}
    lines = []
    for r in results:
        s = systems.get(r.system)
        row = {"file": r.file, "system": r.system, "kind": s.kind if s else None, "bitrate": s.bitrate if s else None,
               "sample_rate": report.settings.get("sample_rate"), "duration": r.duration,
               **{m: r.values.get(m, math.nan) for m in report.metrics},
               **{k: v for k, v in r.values.items() if k not in report.metrics},
               "length_change": r.length_change, "seconds": r.seconds, "errors": r.errors, "texts": r.texts}
        lines.append(json.dumps(_jsonable(row), ensure_ascii=False))
    return "".join(line + "\n" for line in lines)


def write_csv(results: list[FileResult], path: str | Path, metrics: list[str] | None = None) -> None:
    write_text(path, csv_text(results, metrics))


def write_report(report: EvalReport, results: list[FileResult], out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``per_file.csv``, ``per_utterance.jsonl``, ``rate_quality.png``, ``report.md`` and
    ``report.html`` (which shows the examples already saved under ``examples/``) into ``out_dir``; return their
    paths. The json, md, csv and jsonl are written all or nothing (a failed write leaves a previous report's as
    they were)."""
    # Loaded here, not at import: training imports taae.eval for its metrics and never writes a report, so it
    # need not load matplotlib and the page builders.
    from taae.eval.html import write_html
    from taae.eval.plots import write_rate_quality_plot

    out = Path(out_dir)
    paths = {"json": out / "report.json", "markdown": out / "report.md", "csv": out / "per_file.csv",
             "jsonl": out / "per_utterance.jsonl"}
    out.mkdir(parents=True, exist_ok=True)
    plot = write_rate_quality_plot(report, out / RATE_QUALITY_PNG)
    if plot is not None:
        paths["plot"] = plot
    figure = RATE_QUALITY_PNG if plot is not None else None
    write_many({paths["json"]: json_text(report), paths["markdown"]: markdown_text(report, figure),
                paths["csv"]: csv_text(results, report.metrics), paths["jsonl"]: jsonl_text(report, results)})
    paths["html"] = write_html(report, results, out, figure)
    return paths
