"""Tables (terminal and Markdown), target verdicts and the PNG chart for run.py."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from scenarios import PEER_NOTES, PEERS, TARGETS, Case, Curve, Metric, Scenario, Target

ARROW = {"higher": "↑", "lower": "↓", "": ""}


def _values(results: dict[str, Any], case: str, peer: str, metric: str) -> list[float]:
    runs = results.get(case, {}).get("runs", {}).get(peer, [])
    return [r[metric] for r in runs if isinstance(r.get(metric), (int, float))]


def median_fn(results: dict[str, Any]):  # type: ignore[no-untyped-def]
    def med(case: str, peer: str, metric: str) -> float | None:
        vals = _values(results, case, peer, metric)
        return statistics.median(vals) if vals else None

    return med


@dataclass
class Row:
    case: Case
    metric: Metric
    cells: dict[str, str] = field(default_factory=dict)  # peer -> formatted median (or n/a / error)
    medians: dict[str, float] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)  # peer -> ferroproc / peer
    targets: list[tuple[Target, float | None, bool | None, str]] = field(default_factory=list)

    @property
    def label(self) -> str:
        unit = f" ({self.metric.unit})" if self.metric.unit else ""
        return f"{self.metric.label}{unit} {ARROW[self.metric.better]}".strip()


def build_rows(scenarios: list[Scenario], results: dict[str, Any], spread: bool = False) -> list[Row]:
    med = median_fn(results)
    rows = []
    for sc in scenarios:
        for case in sc.cases:
            res = results.get(case.key)
            if res is None:
                continue
            for metric in case.metrics:
                row = Row(case, metric)
                for peer in case.peers:
                    status = res["status"].get(peer, "")
                    m = med(case.key, peer, metric.key)
                    if m is None:
                        if status:
                            row.cells[peer] = "n/a" if status.startswith("n/a") else "error"
                        continue
                    row.medians[peer] = m
                    text = metric.format(m)
                    vals = _values(results, case.key, peer, metric.key)
                    if spread and len(vals) > 1 and m:
                        text += f" ±{(max(vals) - min(vals)) / 2 / abs(m) * 100:.0f}%"
                    row.cells[peer] = text
                ours = row.medians.get("ferroproc")
                if ours is not None:
                    for peer, v in row.medians.items():
                        if peer != "ferroproc" and v:
                            row.ratios[peer] = ours / v
                for t in TARGETS:
                    if t.case == case.key and t.metric == metric.key:
                        row.targets.append((t, *t.evaluate(med)))
                rows.append(row)
    return rows


def _columns(rows: list[Row]) -> list[str]:
    used = {p for r in rows for p in r.cells}
    return [p for p in PEERS if p in used]


def _verdict(t: Target, ratio: float | None, met: bool | None, ref: str, short: bool = False) -> str:
    if ratio is None:
        return f"{t.text}: n/a" if short else f"{t.text}: n/a (ferroproc or {ref} not measured)"
    if met:
        return f"{t.text}: {ratio:.2f}× met"
    by = ((1 - ratio / t.bound) if t.op == ">=" else (ratio / t.bound - 1)) * 100
    return f"{t.text}: {ratio:.3f}× MISSED by {by:.1f}%" if by < 1 else f"{t.text}: {ratio:.2f}× MISSED by {by:.0f}%"


def _table(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    fmt = lambda r: "  ".join(  # noqa: E731
        c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=False))
    )
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in body])


def _md_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in body]
    return "\n".join(lines)


def _median_body(rows: list[Row], cols: list[str]) -> list[list[str]]:
    return [[r.case.key, r.label] + [r.cells.get(p, "—") for p in cols] for r in rows]


def _ratio_body(rows: list[Row], cols: list[str]) -> list[list[str]]:
    body = []
    for r in rows:
        cells = [f"{r.ratios[p]:.2f}×" if p in r.ratios else "—" for p in cols]
        targets = "; ".join(_verdict(t, ratio, met, ref, short=True) for t, ratio, met, ref in r.targets)
        body.append([r.case.key, r.label] + cells + [targets])
    return body


@dataclass
class CurveTable:
    """One metric of one curve: per peer, the median at each x (None where not measured)."""

    scenario: Scenario
    curve: Curve
    metric: Metric
    xs: list[float]
    lines: dict[str, list[float | None]]

    @property
    def title(self) -> str:
        unit = f" ({self.metric.unit})" if self.metric.unit else ""
        return f"{self.scenario.id}: {self.metric.label}{unit} {ARROW[self.metric.better]} by {self.curve.x_label}"


def curve_tables(scenarios: list[Scenario], results: dict[str, Any]) -> list[CurveTable]:
    med = median_fn(results)
    tables = []
    for sc in scenarios:
        cases = {c.name: c for c in sc.cases}
        for curve in sc.curves:
            keys = [f"{sc.id}/{name}" for name in curve.cases if f"{sc.id}/{name}" in results]
            if not keys:
                continue
            xs = [float(results[k]["params"][curve.x_param]) for k in keys]
            for mkey in curve.metrics:
                metric = next(m for m in cases[curve.cases[0]].metrics if m.key == mkey)
                lines = {}
                for peer in PEERS:
                    vals = [med(k, peer, mkey) for k in keys]
                    if any(v is not None for v in vals):
                        lines[peer] = vals
                tables.append(CurveTable(sc, curve, metric, xs, lines))
    return tables


def _curve_body(t: CurveTable) -> tuple[list[str], list[list[str]]]:
    header = ["peer", t.curve.x_param] + [f"{x:,.0f}" for x in t.xs] + [f"{t.xs[-1]:,.0f} ÷ {t.xs[0]:,.0f}"]
    body = []
    for peer, vals in t.lines.items():
        first, last = vals[0], vals[-1]
        ratio = f"{last / first:.2f}×" if first and last is not None else "—"
        body.append([peer, ""] + [t.metric.format(v) for v in vals] + [ratio])
    return header, body


def case_text(case: Case, res: dict[str, Any]) -> str:
    """The rows of one case, printed as soon as it is done."""
    rows = build_rows([Scenario(case.scenario, "", "", [case])], {case.key: res}, spread=True)
    cols = _columns(rows)
    text = _table(["case", "metric"] + cols, _median_body(rows, cols))
    for peer, status in res["status"].items():
        text += f"\n  {peer}: {status}"
    return text


def _extra_lines(results: dict[str, Any]) -> list[str]:
    """Derived figures that are not one peer against another."""
    med = median_fn(results)
    lines = []
    for peer in ("ferroproc", "ferroproc-posix", "native", "native-clone"):
        at0, at19k = med("S8/0", peer, "rate"), med("S8/19k", peer, "rate")
        if at0 and at19k:
            lines.append(f"S8: {peer} keeps {at19k / at0:.2f}× of its 0-fd spawn rate with 19,000 fds open")
    plain, s1 = med("S9/plain", "ferroproc", "rate"), med("S1/seq", "ferroproc", "rate")
    for case in ("options", "options-cgroup"):
        rate = med(f"S9/{case}", "ferroproc", "rate")
        if rate and plain:
            lines.append(
                f"S9 {case}: ferroproc from a 2 GiB parent keeps {rate / plain:.2f}× of its plain rate"
                + (f" ({rate / s1:.2f}× of its S1 one-at-a-time rate)" if s1 else "")
            )
    for peer in ("ferroproc", "twisted"):
        relay, wired = med("S7/relay", peer, "mbps"), med("S7/wired", peer, "mbps")
        if relay and wired:
            lines.append(
                f"S7: wiring childFDs instead of relaying saves {peer} {wired / relay:.1f}× "
                f"({relay:,.0f} → {wired:,.0f} MB/s)"
            )
    s1 = med("S1/seq", "ferroproc", "rate")
    for kind in ("pipes", "pty", "creds"):
        s2 = med(f"S2/{kind}", "ferroproc", "rate")
        if s1 and s2:
            lines.append(f"S2 {kind}: ferroproc from a 2 GiB parent keeps {s2 / s1:.2f}× of its S1 rate")
    return lines


def final_text(scenarios: list[Scenario], results: dict[str, Any]) -> str:
    rows = build_rows(scenarios, results)
    cols = _columns(rows)
    rcols = [p for p in cols if p != "ferroproc"]
    out = [
        "Medians (↑ higher is better, ↓ lower is better)",
        _table(["case", "metric"] + cols, _median_body(rows, cols)),
        "",
        "ferroproc ÷ peer (same metric; for ↓ metrics below 1 is better)",
        _table(["case", "metric"] + [f"÷{p}" for p in rcols] + ["targets"], _ratio_body(rows, rcols)),
        "",
        "Targets",
    ]
    out += [
        "  " + _verdict(t, ratio, met, ref) + f"  [{r.case.key} {r.metric.label}]"
        for r in rows
        for t, ratio, met, ref in r.targets
    ]
    out += [""] + _extra_lines(results)
    for t in curve_tables(scenarios, results):
        header, body = _curve_body(t)
        out += ["", t.title, _table(header, body)]
    return "\n".join(out)


def markdown(
    scenarios: list[Scenario], results: dict[str, Any], info: dict[str, str], run: dict[str, Any], chart: str | None
) -> str:
    rows = build_rows(scenarios, results, spread=True)
    cols = _columns(rows)
    rcols = [p for p in cols if p != "ferroproc"]
    md = ["# ferroproc benchmarks", ""]
    md.append(
        f"`{run['command']}` — {info['date']}, {run['elapsed']}"
        + (" — **quick smoke run: small sizes, 1 run, not representative**" if run.get("quick") else "")
    )
    md += ["", "| machine | |", "|---|---|"]
    md += [f"| {k} | {v} |" for k, v in info.items()]
    vers = ", ".join(f"{p} {v}" for p, v in run["versions"].items() if v)
    md += ["", f"Peers: {vers}." if vers else ""]
    if run["unavailable"]:
        md.append("Not available: " + "; ".join(f"{p} ({why})" for p, why in run["unavailable"].items()) + ".")
    md += [
        "",
        "Every run is a fresh process; peers alternate run by run after a warm-up round. "
        "Values are medians; ±x% is half the min–max range over the runs.",
        "",
    ]
    md += [
        "## Medians",
        "",
        "↑ higher is better, ↓ lower is better.",
        "",
        _md_table(["case", "metric"] + cols, _median_body(rows, cols)),
        "",
    ]
    md += [
        "## ferroproc ÷ peer, and targets",
        "",
        "The same metric divided: for ↑ metrics above 1× means ferroproc is ahead, for ↓ metrics below 1×.",
        "",
        _md_table(["case", "metric"] + [f"÷ {p}" for p in rcols] + ["targets"], _ratio_body(rows, rcols)),
        "",
    ]
    md += ["### Targets", ""]
    md += [
        f"- {r.case.key} {r.metric.label}: " + _verdict(t, ratio, met, ref)
        for r in rows
        for t, ratio, met, ref in r.targets
    ]
    extra = _extra_lines(results)
    if extra:
        md += [""] + [f"- {line}" for line in extra]
    curves = curve_tables(scenarios, results)
    if curves:
        md += ["", "## Curves", ""]
        for t in curves:
            header, body = _curve_body(t)
            md += [f"**{t.title}** (medians; the last column: the largest x ÷ the smallest)", ""]
            md += [_md_table(header, body), ""]
    statuses = [(key, p, s) for key, res in results.items() for p, s in res["status"].items()]
    if statuses:
        md += ["", "### n/a and errors", ""] + [f"- {key} {p}: {s}" for key, p, s in statuses]
    if chart:
        md += ["", "## Chart", "", f"![benchmark chart]({chart})"]
    md += ["", "## Scenarios", ""]
    for sc in scenarios:
        md.append(f"- **{sc.id} {sc.title}.** {sc.about}")
    md += ["", "## Peers", ""] + [f"- **{p}**: {PEER_NOTES[p]}" for p in cols]
    md += ["", "Sizes and run counts: `benches/scenarios.py`. How to run: `benches/README.md`.", ""]
    return "\n".join(md)


def write_chart(scenarios: list[Scenario], results: dict[str, Any], path: str) -> str | None:
    """A line panel per curve metric (one line per peer, two grid cells wide), then one small
    bar chart per other metric that has a direction; ferroproc highlighted."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator
    except ImportError:
        return None
    curves = curve_tables(scenarios, results)
    on_curve = {f"{sc.id}/{name}" for sc in scenarios for c in sc.curves for name in c.cases}
    rows = [r for r in build_rows(scenarios, results) if r.metric.better and r.medians and r.case.key not in on_curve]
    if not curves and not rows:
        return None
    ncols = 4
    curve_rows, bar_rows = (len(curves) + 1) // 2, (len(rows) + ncols - 1) // ncols
    fig = plt.figure(figsize=(4.6 * ncols, 3.2 * curve_rows + 2.7 * bar_rows))
    grid = fig.add_gridspec(curve_rows + bar_rows, ncols, height_ratios=[3.2] * curve_rows + [2.7] * bar_rows)
    colours = {
        "ferroproc": "#d9531e",
        "ferroproc-posix": "#f0a070",
        "native": "#333333",
        "native-clone": "#111111",
        "native-fork": "#777777",
        "native-64k": "#777777",
    }
    cycle = ["#4c78a8", "#54a24b", "#b279a2", "#9d755d", "#72b7b2"]
    for i, t in enumerate(curves):
        ax = fig.add_subplot(grid[i // 2, (i % 2) * 2 : (i % 2) * 2 + 2])
        for j, (peer, vals) in enumerate(t.lines.items()):
            pts = [(x, v) for x, v in zip(t.xs, vals, strict=True) if v is not None]
            ax.plot(
                [x for x, _ in pts],
                [v for _, v in pts],
                "--" if peer in ("ferroproc-posix", "native") else "-",
                marker="o",
                markersize=3,
                linewidth=2.4 if peer == "ferroproc" else 1.2,
                color=colours.get(peer, cycle[j % len(cycle)]),
                label=peer,
            )
        if t.curve.log_x:
            lowest = min((x for x in t.xs if x > 0), default=1.0)
            if min(t.xs) <= 0:
                ax.set_xscale("symlog", linthresh=lowest, linscale=0.5)
            else:
                ax.set_xscale("log")
        if t.curve.log_y:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_locator(NullLocator())
        else:
            ax.set_ylim(bottom=0)
        ax.set_xticks(t.xs)
        ax.set_xticklabels([f"{x:,.0f}" for x in t.xs], fontsize=8)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel(t.curve.x_label, fontsize=8)
        ax.set_title(t.title, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2, loc="best")
    for i, row in enumerate(rows):
        ax = fig.add_subplot(grid[curve_rows + i // ncols, i % ncols])
        peers = [p for p in PEERS if p in row.medians]
        vals = [row.medians[p] for p in peers]
        ax.barh(peers, vals, color=[colours.get(p, "#4c78a8") for p in peers])
        ax.invert_yaxis()
        ax.set_title(f"{row.case.key}: {row.label}", fontsize=9)
        ax.tick_params(labelsize=8)
        top = max(vals) if vals else 1
        for y, v in enumerate(vals):
            ax.text(v + top * 0.01, y, row.metric.format(v), va="center", fontsize=7)
        ax.set_xlim(0, top * 1.25)
    fig.suptitle("ferroproc vs peers (medians; ↑ higher is better, ↓ lower is better)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
