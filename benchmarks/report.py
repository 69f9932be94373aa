"""Summaries, targets, the markdown table, the PNG chart and RESULTS.md."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from typing import Any, Optional

GENERATED_END = "<!-- END GENERATED: notes below this line are kept by run.py -->"


@dataclass(frozen=True)
class Target:
    """A goal of issue 7: ``metric`` of ``subject`` (divided by that of ``versus``) vs ``goal``."""

    title: str
    subject: str
    metric: str
    goal: float
    at_least: bool
    versus: Optional[str] = None
    unit: str = "×"


TARGETS = [
    Target("Lifted view vs the same handler in bare aiohttp (requests/s)",
           "lifted/aiodjango", "rps", 0.95, True, "lifted/bare-aiohttp"),
    Target("Lifted view vs bare aiohttp sending the same headers (requests/s)",
           "lifted/aiodjango", "rps", 0.95, True, "lifted/bare-aiohttp-same-bytes"),
    Target("Lifted view vs Django's async view under uvicorn (requests/s)",
           "lifted/aiodjango", "rps", 25.0, True, "django-async/uvicorn"),
    Target("Bridge vs aiohttp-wsgi (requests/s)",
           "sync/aiodjango", "rps", 1.2, True, "sync/aiohttp-wsgi"),
    Target("Bridge vs gunicorn gthread (requests/s)",
           "sync/aiodjango", "rps", 1.5, True, "sync/gunicorn-gthread"),
    Target("Bridge p99 vs aiohttp-wsgi's p99",
           "sync/aiodjango", "p99_ms", 1.0, False, "sync/aiohttp-wsgi"),
    Target("Bridge p99 vs gunicorn gthread's p99",
           "sync/aiodjango", "p99_ms", 1.0, False, "sync/gunicorn-gthread"),
    Target("StreamingHttpResponse, 10 MiB in 64 KiB chunks: throughput vs gunicorn gthread",
           "stream/aiodjango", "mib_per_s", 1.0, True, "stream/gunicorn-gthread"),
    Target("FileResponse: aiodjango's peak RSS growth",
           "file/aiodjango", "rss_growth_mib", 5.0, False, unit=" MiB"),
    Target("FileResponse: download time vs gunicorn gthread",
           "file/aiodjango", "download_s", 1.2, False, "file/gunicorn-gthread"),
    Target("150 stalled uploads of ~1 MiB: aiodjango's RSS growth",
           "stalled/aiodjango", "rss_growth_mib", 64.0, False, unit=" MiB"),
    Target("Lifted view p99, bridge pool saturated vs idle",
           "saturated/aiodjango", "p99_ms", 2.0, False, "lifted/aiodjango"),
    Target("Lifted view, 1,000 patterns vs 10 (requests/s)",
           "routing/lifted-1000", "rps", 0.9, True, "lifted/aiodjango"),
    Target("Fallback vs aiohttp-wsgi, 1,000 patterns, view listed first (requests/s)",
           "routing/sync-first-1000/aiodjango", "rps", 0.95, True,
           "routing/sync-first-1000/aiohttp-wsgi"),
    Target("Fallback vs aiohttp-wsgi, 1,000 patterns, view listed last (requests/s)",
           "routing/sync-last-1000/aiodjango", "rps", 0.95, True,
           "routing/sync-last-1000/aiohttp-wsgi"),
    Target("Idle websocket: RSS per connection",
           "websockets/aiodjango", "rss_per_connection_kib", 20.0, False, unit=" KiB"),
]


def median(values: list[float]) -> Optional[float]:
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


def summarise(bench: dict[str, Any]) -> dict[str, Any]:
    """Medians over the runs of one benchmark."""
    runs = bench.get("runs") or []
    if not runs:
        return {}
    kind = bench["kind"]
    if kind == "http":
        summary = {
            "rps": median([run["rps"] for run in runs]),
            "p50_ms": median([run["latency_us"]["p50"] / 1000 for run in runs]),
            "p99_ms": median([run["latency_us"]["p99"] / 1000 for run in runs]),
            "errors": sum(run["error_count"] for run in runs),
            "cpu_us_per_request": median([run.get("cpu_us_per_request") for run in runs]),
        }
        if any("background" in run for run in runs):
            summary["background_rps"] = median([run["background"]["rps"] for run in runs])
        return summary
    if kind == "stream":
        return {
            "mib_per_s": median([run["mib_per_s"] for run in runs]),
            "p99_ms": median([run["latency_us"]["p99"] / 1000 for run in runs]),
            "errors": sum(run["error_count"] for run in runs),
            "cpu_us_per_request": median([run.get("cpu_us_per_request") for run in runs]),
        }
    if kind == "file":
        return {
            "rss_growth_mib": median([run["rss_growth_kib"] / 1024 for run in runs]),
            "download_s": median([seconds for run in runs for seconds in run["downloads_s"]]),
            "server_cpu_ms": median([ms for run in runs for ms in run.get("server_cpu_ms", [])]),
            "peak_method": runs[0]["peak_method"],
        }
    if kind == "stalled":
        first = runs[0]["paced"]
        return {
            "rss_growth_mib": median([run["paced"]["rss_growth_kib"] / 1024 for run in runs]),
            "burst_rss_growth_mib": median([run["burst"]["rss_growth_kib"] / 1024 for run in runs]),
            "sent_mib": median([run["paced"]["sent_bytes"] / (1 << 20) for run in runs]),
            "read_mib": median([run["paced"]["read_bytes"] / (1 << 20) for run in runs]),
            "clients": first["clients"],
            "declared_mib": first["declared_bytes"] / (1 << 20),
        }
    if kind == "micro":
        return {
            patterns: {key: median([run[patterns][key] for run in runs]) for key in runs[0][patterns]}
            for patterns in runs[0]
        }
    if kind == "websockets":
        run = runs[-1]
        return {
            "opened": run["opened"],
            "rss_per_connection_kib": run["rss_per_connection_kib"],
            "echo_p50_ms": run["echo"]["p50_us"] / 1000,
            "echo_p99_ms": run["echo"]["p99_us"] / 1000,
        }
    return {}


def evaluate(benchmarks: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    evaluated = []
    for target in TARGETS:
        subject = benchmarks.get(target.subject, {}).get("summary", {}).get(target.metric)
        entry: dict[str, Any] = {
            "title": target.title,
            "subject": target.subject,
            "versus": target.versus,
            "metric": target.metric,
            "goal": ("≥ " if target.at_least else "≤ " if target.versus else "< ")
            + f"{target.goal:g}{target.unit}",
            "value": None,
            "met": None,
        }
        value = subject
        if target.versus is not None:
            other = benchmarks.get(target.versus, {}).get("summary", {}).get(target.metric)
            value = subject / other if subject is not None and other else None
        cpu_metric = {"rps": "cpu_us_per_request", "mib_per_s": "cpu_us_per_request",
                      "download_s": "server_cpu_ms"}.get(target.metric)
        if cpu_metric and target.versus is not None:
            # The same comparison from the server's CPU time per request (for
            # requests/s: requests per CPU-second, so higher is better still).
            mine = benchmarks.get(target.subject, {}).get("summary", {}).get(cpu_metric)
            theirs = benchmarks.get(target.versus, {}).get("summary", {}).get(cpu_metric)
            if mine and theirs:
                higher_is_better = target.metric in ("rps", "mib_per_s")
                entry["cpu_value"] = theirs / mine if higher_is_better else mine / theirs
        if value is not None:
            entry["value"] = value
            if target.at_least:
                entry["met"] = value >= target.goal
            elif target.versus is None:
                entry["met"] = value < target.goal
            else:
                entry["met"] = value <= target.goal
        evaluated.append(entry)
    return evaluated


def _fmt(value: Optional[float], digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def tables(results: dict[str, Any]) -> str:
    """The markdown tables of one run: throughput, files, websockets, targets."""
    benchmarks = results["benchmarks"]
    out = []
    http = [(name, b) for name, b in benchmarks.items() if b["kind"] == "http"]
    if http:
        out += [
            "| benchmark | server | URL | requests/s | p50 ms | p99 ms | server CPU µs/request | note |",
            "|---|---|---|--:|--:|--:|--:|---|",
        ]
        for name, bench in http:
            s = bench.get("summary", {})
            note = bench.get("skipped") or bench.get("error") or ""
            if s.get("errors"):
                note = (note + " " if note else "") + f"{s['errors']} wrk errors"
            if "background_rps" in s:
                settings = results["settings"]
                most = settings["threads"] / settings["sleep_seconds"]
                note = (note + " " if note else "") + (
                    f"meanwhile {settings['sleep_connections']} connections to sleep views: "
                    f"{s['background_rps']:.0f} requests/s of {most:.0f} possible"
                )
            out.append(
                f"| {name} | {bench['label']} | `{bench['path']}` | {_fmt(s.get('rps'))} | "
                f"{_fmt(s.get('p50_ms'), 2)} | {_fmt(s.get('p99_ms'), 2)} | "
                f"{_fmt(s.get('cpu_us_per_request'))} | {note} |"
            )
        out.append("")
    for name, bench in benchmarks.items():
        s = bench.get("summary")
        if bench["kind"] != "micro" or not s:
            continue
        out += [
            "| route lookup, in-process, µs | 10 patterns | 1,000 patterns |",
            "|---|--:|--:|",
        ]
        for key, title in (
            ("aiodjango_lifted_us", "aiodjango: aiohttp router, lifted view defined last"),
            ("bare_aiohttp_us", "bare aiohttp router, one route"),
            ("django_resolve_lifted_us", "Django `resolve()` of that view"),
            ("aiodjango_fallback_us", "aiodjango: aiohttp router to the Django fallback (`/sync/last/`)"),
            ("django_resolve_fallback_us", "Django `resolve()` of `/sync/last/`, which Django then does itself"),
        ):
            out.append(f"| {title} | {_fmt(s['10'].get(key), 1)} | {_fmt(s['1000'].get(key), 1)} |")
        out.append("")
    streams = [(name, b) for name, b in benchmarks.items() if b["kind"] == "stream"]
    if streams:
        out += [
            "| 10 MiB StreamingHttpResponse, 64 KiB chunks | server | MiB/s | p99 ms | server CPU ms/response | note |",
            "|---|---|--:|--:|--:|---|",
        ]
        for name, bench in streams:
            s = bench.get("summary", {})
            note = bench.get("skipped") or bench.get("error") or ""
            if s.get("errors"):
                note = (note + " " if note else "") + f"{s['errors']} wrk errors"
            cpu = s.get("cpu_us_per_request")
            out.append(
                f"| {name} | {bench['label']} | {_fmt(s.get('mib_per_s'), 1)} | "
                f"{_fmt(s.get('p99_ms'), 1)} | {_fmt(cpu / 1000 if cpu else None, 1)} | {note} |"
            )
        out.append("")
    files = [(name, b) for name, b in benchmarks.items() if b["kind"] == "file"]
    if files:
        size = results["settings"]["file_size_mib"]
        out += [
            f"| {size} MiB FileResponse | server | peak RSS growth MiB | download s | server CPU ms | note |",
            "|---|---|--:|--:|--:|---|",
        ]
        for name, bench in files:
            s = bench.get("summary", {})
            note = bench.get("skipped") or bench.get("error") or ""
            out.append(
                f"| {name} | {bench['label']} | {_fmt(s.get('rss_growth_mib'), 1)} | "
                f"{_fmt(s.get('download_s'), 3)} | {_fmt(s.get('server_cpu_ms'), 1)} | {note} |"
            )
        out.append("")
    stalled = [(name, b) for name, b in benchmarks.items() if b["kind"] == "stalled"]
    if stalled:
        shape = next((b["summary"] for _, b in stalled if b.get("summary")), None)
        title = (
            f"{shape['clients']} uploads stalled, {shape['declared_mib']:g} MiB announced, "
            f"~{shape['sent_mib'] / shape['clients']:.0f} MiB sent each"
            if shape else "stalled uploads"
        )
        out += [
            f"| {title} | server | RSS growth MiB, paced | RSS growth MiB, burst | "
            "body MiB read by the server, paced | note |",
            "|---|---|--:|--:|--:|---|",
        ]
        for name, bench in stalled:
            s = bench.get("summary", {})
            note = bench.get("skipped") or bench.get("error") or ""
            read = f"{_fmt(s.get('read_mib'))} of {_fmt(s.get('sent_mib'))}" if s else "–"
            out.append(
                f"| {name} | {bench['label']} | {_fmt(s.get('rss_growth_mib'), 1)} | "
                f"{_fmt(s.get('burst_rss_growth_mib'), 1)} | {read} | {note} |"
            )
        out.append("")
    sockets = [(name, b) for name, b in benchmarks.items() if b["kind"] == "websockets"]
    if sockets:
        out += [
            "| idle websockets | server | connections | RSS KiB each | echo p50 ms | echo p99 ms | note |",
            "|---|---|--:|--:|--:|--:|---|",
        ]
        for name, bench in sockets:
            s = bench.get("summary", {})
            note = bench.get("skipped") or bench.get("error") or ""
            out.append(
                f"| {name} | {bench['label']} | {_fmt(s.get('opened'))} | "
                f"{_fmt(s.get('rss_per_connection_kib'), 1)} | {_fmt(s.get('echo_p50_ms'), 2)} | "
                f"{_fmt(s.get('echo_p99_ms'), 2)} | {note} |"
            )
        out.append("")
    targets = [t for t in results["targets"] if t["value"] is not None]
    if targets:
        out += [
            "| target | measured | goal | met | same, by server CPU time |",
            "|---|--:|--:|:-:|--:|",
        ]
        for target in targets:
            unit = "" if target["versus"] is None else "×"
            digits = 1 if target["versus"] is None else 2
            met = "yes" if target["met"] else "**no**"
            cpu = f"{target['cpu_value']:.2f}×" if target.get("cpu_value") else ""
            out.append(
                f"| {target['title']} | {target['value']:.{digits}f}{unit} | {target['goal']} | "
                f"{met} | {cpu} |"
            )
        out.append("")
    return "\n".join(out)


def chart(results: dict[str, Any], path: str) -> Optional[str]:
    """Draw the PNG chart; returns why not when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed"
    benchmarks = results["benchmarks"]

    def rows(kind: str) -> list[tuple[str, dict[str, Any], str]]:
        found = [
            (name, bench["summary"], "#2a7ab9" if bench["server"] == "aiodjango" else "#9a9a9a")
            for name, bench in benchmarks.items()
            if bench["kind"] == kind and bench.get("summary")
        ]
        return found[::-1]  # barh draws bottom-up

    size = results["settings"]["file_size_mib"]
    panels = [
        (rows("http"), ("rps", "requests/s (median of runs)", "{:,.0f}"),
         ("p99_ms", "p99 latency, ms", "{:.1f}")),
        (rows("file"), ("rss_growth_mib", f"peak RSS growth, MiB ({size} MiB FileResponse)", "{:.1f}"),
         ("download_s", "download time, s", "{:.2f}")),
        (rows("stalled"), ("rss_growth_mib", "RSS growth, MiB, stalled uploads, paced", "{:.1f}"),
         ("burst_rss_growth_mib", "RSS growth, MiB, stalled uploads, burst", "{:.1f}")),
        (rows("websockets"), ("rss_per_connection_kib", "RSS per idle websocket, KiB", "{:.1f}"),
         ("echo_p99_ms", "echo round trip p99, ms, all connections open", "{:.2f}")),
    ]
    panels = [panel for panel in panels if panel[0]]
    if not panels:
        return "no results to draw"
    heights = [max(1.6, 0.38 * len(panel[0])) for panel in panels]
    figure, axes = plt.subplots(
        len(panels), 2, figsize=(13, sum(heights) + 1.4),
        gridspec_kw={"height_ratios": heights}, squeeze=False,
    )
    for row, (found, *metrics) in enumerate(panels):
        names = [name for name, _, _ in found]
        colours = [colour for _, _, colour in found]
        for column, (metric, label, fmt) in enumerate(metrics):
            axis = axes[row][column]
            values = [summary.get(metric) or 0 for _, summary, _ in found]
            axis.barh(names, values, color=colours)
            axis.set_xlabel(label)
            axis.set_xlim(0, (max(values) or 1) * 1.18)
            for y, value in enumerate(values):
                axis.text(value, y, " " + fmt.format(value), va="center", fontsize=8)
            axis.tick_params(axis="y", labelsize=8)
            axis.grid(axis="x", alpha=0.3)
            if column:
                axis.set_yticks([])
    meta = results["meta"]
    pinning = (
        f"server on CPU {meta['server_cpu']}, load on CPU {meta['load_cpu']}"
        if meta["server_cpu"] is not None else "not pinned"
    )
    figure.suptitle(
        f"aiodjango benchmarks, {meta['date']}: {pinning}, wrk -c{results['settings']['connections']}; "
        f"blue: aiodjango",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return None


def results_md(results: dict[str, Any], *, command: str, chart_name: Optional[str], keep: str) -> str:
    meta = results["meta"]
    settings = results["settings"]
    versions = meta["versions"]
    names = ["python", "Django", "aiohttp", "aiohttp-wsgi", "gunicorn", "uvicorn", "httptools", "asgiref"]
    version_line = ", ".join(f"{name} {versions.get(name) or 'absent'}" for name in names)
    pinning = (
        f"servers pinned to CPU {meta['server_cpu']} (`taskset -c {meta['server_cpu']}`), "
        f"load generators to CPU {meta['load_cpu']} (`taskset -c {meta['load_cpu']}`)"
        if meta["server_cpu"] is not None
        else "no pinning (fewer than 2 CPUs or no taskset)"
    )
    lines = [
        "# aiodjango benchmarks: latest results",
        "",
        "<!-- BEGIN GENERATED by benchmarks/run.py: everything down to END GENERATED is rewritten -->",
        "",
        f"Run on {meta['date']} with `{command}`.",
        "",
        f"- **Machine:** {meta['cpu_model']}, {meta['cpus']} CPUs, {meta['memory_gib']:.0f} GiB, "
        f"Linux {meta['kernel']}; load average {meta['loadavg_start']} before the run, "
        f"{meta['loadavg_end']} after.",
        f"- **Method:** every server single-process; {pinning}; "
        f"`wrk -t1 -c{settings['connections']} -d{settings['duration']}s --latency` after a "
        f"{settings['warmup']} s warm-up; median of {settings['runs']} runs, interleaved "
        f"(round 1 of every configuration, then round 2, …); threads = {settings['threads']} "
        f"wherever a server has a pool. Targets compare those medians; their last column "
        f"compares the servers' CPU time per request (per download for files) instead, "
        f"which moves far less when other processes share the CPUs. Each run writes every "
        f"round's raw numbers to `benchmarks/results/latest.json` (not committed).",
        f"- **Versions:** aiodjango {meta['aiodjango']}; {version_line}; {meta['wrk']}.",
        "",
        tables(results),
    ]
    if chart_name:
        lines += [f"![requests/s, p99, memory]({chart_name})", ""]
    lines += [GENERATED_END, ""]
    text = "\n".join(lines)
    return text + keep.lstrip("\n")


def kept_notes(path: str) -> str:
    """What follows the generated part of an existing RESULTS.md."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError:
        return ""
    _, found, rest = text.partition(GENERATED_END)
    return rest if found else ""


def write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
