"""The report: ``latest.md`` (one table, every figure beside its ceiling), ``latest.json`` and a
latency histogram PNG per scenario, plus the machine and the date they were measured on."""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from bench.harness import Result, _fmt

UNITS = {"_ms": "ms", "_s": "s", "_per_s": "/s", "_pct": "%", "_mib": "MiB", "_mb": "MB"}


def machine() -> dict[str, Any]:
    """Cores, CPU model (/proc/cpuinfo), memory, OS and Python: what the figures depend on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {"cores": os.cpu_count(), "cpu_model": model, "memory_gib": memory_gib,
            "os": f"{platform.system()} {platform.release()}", "python": sys.version.split()[0],
            "load_before": load}


def unit(figure: str) -> str:
    for suffix, name in sorted(UNITS.items(), key=lambda item: -len(item[0])):
        if figure.endswith(suffix):
            return name
    return ""


def label(figure: str) -> str:
    name = figure
    for suffix in sorted(UNITS, key=len, reverse=True):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name.replace("_", " ")


def ratio_text(value: float | None) -> str:
    return "—" if value is None else f"×{value:.2f}" if value < 100 else f"×{value:.0f}"


def render_markdown(results: list[Result], meta: dict[str, Any]) -> str:
    m = meta["machine"]
    lines = [
        "# sensor-hub performance report",
        "",
        f"Measured {meta['date']} with `python -m bench --{meta['mode']}` on {m['cores']} cores "
        f"({m['cpu_model']}), {m['memory_gib']} GiB, {m['os']}, Python {m['python']}; "
        f"load average before the run: {', '.join(str(x) for x in m['load_before']) or 'n/a'}.",
        "",
        "Each figure is shown beside the same figure of its ceiling (the raw component it is built on, "
        "measured in the same run); the ratio is value ÷ ceiling. Latencies are per message, over all "
        "measured rounds (after a warm-up round).",
        "",
        "| scenario | figure | value | ceiling | ratio | target | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.status != "ok":
            lines.append(f"| {r.name} | — | {r.reason or r.status} | | | "
                         f"{', '.join(f'{k} {t}' for k, t in r.targets.items()) or ''} | {r.status} |")
            continue
        for figure in r.shown:
            value = r.figures.get(figure)
            base = r.ceilings.get(figure)
            target = r.targets.get(figure)
            verdict = r.verdicts.get(figure)
            verdict_text = "" if verdict is None else ("pass" if verdict else "**MISS**")
            u = unit(figure)
            lines.append(f"| {r.name} | {label(figure)}{f' ({u})' if u else ''} | {_fmt(value)} | "
                         f"{_fmt(base) if base is not None else ''} | "
                         f"{ratio_text(r.ratios.get(figure)) if figure in r.ratios else ''} | "
                         f"{target if target else ''} | {verdict_text} |")
    lines += ["", "## Scenarios", ""]
    for r in results:
        lines.append(f"### {r.name}: {r.title}" if r.title != r.name else f"### {r.name}")
        lines.append("")
        if r.status != "ok":
            lines += [f"{r.status}: {r.reason}", ""]
            continue
        base = f"; ceiling: `{r.baseline}`" if r.baseline else ""
        params = ", ".join(f"{k}={v}" for k, v in r.params.items())
        lines.append(f"{r.rounds} round(s), {r.wall_s:.1f} s wall{base}" + (f"; {params}" if params else "") + ".")
        lines.append("")
        for note in r.notes:
            lines.append(f"- {note}")
        if r.notes:
            lines.append("")
        extra = [f for f in r.figures if f not in r.shown]
        if extra:
            lines.append("Other figures: " + ", ".join(f"{label(f)} {_fmt(r.figures[f])}{unit(f) and ' ' + unit(f)}"
                                                       for f in extra) + ".")
            lines.append("")
        if r.processes:
            lines += ["| process | CPU (s) | CPU (%) | peak RSS (MiB) |", "|---|---|---|---|"]
            for name, usage in r.processes.items():
                lines.append(f"| {name} | {_fmt(usage['cpu_s'])} | {_fmt(usage['cpu_pct'])} | "
                             f"{_fmt(usage['peak_rss_mib'])} |")
            lines.append("")
        if r.latencies_ms:
            lines += [f"![{r.name} latency histogram]({r.name}.png)", ""]
        if r.profile:
            lines += ["<details><summary>Profile of one extra round (cProfile of the bench process, py-spy of "
                      f"the busiest processes), because {', '.join(r.missed)} missed</summary>", "", "```",
                      r.profile.strip(), "```", "</details>", ""]
    lines += ["Peak RSS is the sum of VmHWM over a process and its children (gunicorn runs the app in a "
              "worker), so it is an upper bound. CPU is user + system time during the measured rounds; "
              "100 % is one core.", ""]
    return "\n".join(lines)


def render_json(results: list[Result], meta: dict[str, Any]) -> dict[str, Any]:
    return {**meta, "results": [r.to_json() for r in results]}


def histogram(result: Result, path: Path) -> None:
    """Latency histogram (log-spaced bins) with p50/p99 marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    data = np.asarray([max(x, 1e-4) for x in result.latencies_ms])
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=80)
    low, high = data.min(), data.max()
    bins = np.logspace(np.log10(low), np.log10(high * 1.0001), 40) if high > low * 1.01 else 20
    ax.hist(data, bins=bins, color="#4a7ab5")
    if isinstance(bins, np.ndarray):
        ax.set_xscale("log")
    for q, style in (("p50_ms", "--"), ("p99_ms", ":")):
        if q in result.figures:
            ax.axvline(result.figures[q], color="#c0392b", linestyle=style,
                       label=f"{q[:3]} {_fmt(result.figures[q])} ms")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("messages")
    ax.set_title(result.name, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write(results: list[Result], out_dir: Path, mode: str, plots: bool = True,
          machine_info: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write latest.md, latest.json and the PNGs; ``machine_info`` is best read before the run
    (its load average then says how busy the machine was to begin with)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"date": dt.datetime.now(dt.UTC).astimezone().isoformat(timespec="seconds"),
            "mode": mode, "machine": machine_info or machine()}
    written: dict[str, Path] = {}
    md = out_dir / "latest.md"
    md.write_text(render_markdown(results, meta), encoding="utf-8")
    written["md"] = md
    js = out_dir / "latest.json"
    js.write_text(json.dumps(render_json(results, meta), indent=2) + "\n", encoding="utf-8")
    written["json"] = js
    if plots:
        for r in results:
            if r.status == "ok" and r.latencies_ms:
                png = out_dir / f"{r.name}.png"
                histogram(r, png)
                written[r.name] = png
    return written


def broken_results(broken: dict[str, str]) -> list[Result]:
    """A scenario file that cannot be imported is reported, not skipped silently."""
    return [Result(module, module, "error", reason=f"cannot be loaded: {error}") for module, error in broken.items()]
