"""``python -m taae.scaling run|fit|plot|sizes``: the scaling study from ladder file to plot.

    python -m taae.scaling sizes --ladder configs/ladder/gpu.yaml               # parameters and compute per rung
    python -m taae.scaling run   --ladder configs/ladder/cpu_mini.yaml          # train + evaluate, resumable
    python -m taae.scaling fit   --table runs/ladder/cpu_mini/ladder.csv --metric mel --preset 700bps
    python -m taae.scaling plot  --table runs/ladder/cpu_mini/ladder.csv --metric mel --preset 700bps
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from taae.errors import pop_debug, run_main
from taae.scaling import files, table
from taae.scaling.fit import bootstrap_fit
from taae.scaling.ladder import Budget, load_ladder


def _sizes(args) -> None:
    from taae.scaling.run import plan

    ladder = load_ladder(args.ladder)
    budget = Budget.parse(args.budget) if args.budget else ladder.budget or Budget("audio_seconds", 1.0)
    print("| family | rung | parameters | train GFLOP per audio s | per training item (GFLOP) | "
          f"batches for {budget} |")
    print("|---|---|---|---|---|---|")
    for rung in ladder.select(args.only):
        p = plan(rung, budget, ladder, Path("."))
        batches = p.batches if p.batches is not None else "—"
        print(f"| {rung.family} | {rung.name} | {p.parameters / 1e6:.2f} M | "
              f"{p.train_flops_per_audio_second / 1e9:.2f} | {p.train_flops_per_item / 1e9:.2f} | {batches} |")


def _run(args) -> None:
    from taae.scaling.run import run_ladder

    ladder = load_ladder(args.ladder)
    _, paths = run_ladder(ladder, Budget.parse(args.budget) if args.budget else None, args.out, args.only,
                          args.retrain_changed)
    print(Path(paths["markdown"]).read_text())
    print(f"wrote {paths['csv']} and {paths['markdown']}")


def _rows(args) -> list[dict]:
    rows = table.read(args.table)
    if args.include_unmet:
        return rows
    rows, left_out = table.with_budget_met(rows)
    if left_out:
        print(f"left out, budget not met (--include-unmet keeps them): {', '.join(left_out)}")
    return rows


def _fit(args) -> None:
    rows = _rows(args)
    families = args.family or sorted({r["family"] for r in rows})
    axes = list(table.X_AXES) if args.x == "both" else [args.x]
    record = {"table": str(args.table), "metric": args.metric, "preset": args.preset, "fits": []}
    for family in families:
        for axis in axes:
            s = table.series(rows, family, args.preset, args.metric, axis)
            for offset in (True, False):
                if len(set(s.x.tolist())) < (3 if offset else 2):
                    print(f"{family} vs {axis}: {len(s.x)} rungs, too few for {'a·N^b + c' if offset else 'a·N^b'}")
                    continue
                fit = bootstrap_fit(s.x, s.per_file, offset=offset, num_boot=args.num_boot, level=args.level,
                                    seed=args.seed)
                print(f"{family} {args.metric} at {args.preset} vs {axis}: {fit.describe()}")
                record["fits"].append({"family": family, "x": axis, "rungs": s.rungs, "sizes": s.x.tolist(),
                                       "form": fit.form, **asdict(fit)})
    out = Path(args.out) if args.out else Path(args.table).with_name(f"fit_{args.metric}_{args.preset}.json")
    files.write_json(out, record)
    print(f"wrote {out}")


def _plot(args) -> None:
    from taae.scaling.plot import PlotSettings, plot

    rows = _rows(args)
    out = Path(args.out) if args.out else Path(args.table).with_name(f"scaling_{args.metric}_{args.preset}")
    paths = plot(rows, out, PlotSettings(metric=args.metric, preset=args.preset, num_boot=args.num_boot,
                                         level=args.level, seed=args.seed))
    print(f"wrote {paths['png']} and {paths['csv']}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m taae.scaling", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def ladder_args(p):
        p.add_argument("--ladder", required=True, help="ladder YAML (configs/ladder/*.yaml)")
        p.add_argument("--budget", default=None, help="per rung: audio_seconds=S, flops=F or wall_seconds=S "
                                                      "(default: the ladder file's)")
        p.add_argument("--only", nargs="*", default=None, help="rungs (family/rung), families or rung names")

    ladder_args(sub.add_parser("sizes", help="parameters and compute of every rung (nothing is trained)"))
    run = sub.add_parser("run", help="train and evaluate every rung (finished rungs are skipped)")
    ladder_args(run)
    run.add_argument("--out", default=None, help="study folder (default: the ladder file's)")
    run.add_argument("--retrain-changed", action="store_true",
                     help="move a rung trained with another configuration aside (<rung>.stale-*) and retrain it")

    def table_args(p):
        p.add_argument("--table", required=True, help="ladder.csv written by run")
        p.add_argument("--metric", default="mel", help="si_sdr, mel, stft, pesq_wb, pesq_nb, stoi or mos")
        p.add_argument("--preset", default="700bps")
        p.add_argument("--num-boot", type=int, default=1000, help="bootstrap resamples of the test files")
        p.add_argument("--level", type=float, default=0.95, help="interval level")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--out", default=None)
        p.add_argument("--include-unmet", action="store_true",
                       help="keep rungs that did not spend their budget (left out of fits and plots by default)")

    fit = sub.add_parser("fit", help="fit a·N^b + c and a·N^b with bootstrap intervals")
    table_args(fit)
    fit.add_argument("--family", action="append", default=None, help="family to fit (repeatable; default: all)")
    fit.add_argument("--x", default="both", choices=["both", *table.X_AXES], help="size axis")
    table_args(sub.add_parser("plot", help="metric vs parameters and vs compute, PNG + CSV"))
    return parser


COMMANDS = {"sizes": _sizes, "run": _run, "fit": _fit, "plot": _plot}


def main(argv: list[str] | None = None) -> int:
    argv, debug = pop_debug(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    scaling = logging.getLogger("taae")  # the runner's progress; Lightning logs through its own handlers
    scaling.addHandler(handler)
    scaling.setLevel(logging.INFO)
    return run_main(f"python -m taae.scaling {args.command}", lambda: COMMANDS[args.command](args), debug)


if __name__ == "__main__":
    raise SystemExit(main())
