"""SVG plots for docs/benchmarks/, in plain Python (no plotting library).

    bar_chart(path, title, groups, series, unit)    grouped bars, error whiskers
    cdf_chart(path, title, series, unit)            cumulative distributions

Each writes a self-contained SVG (about 720x360, system fonts, no scripts)
that GitHub and browsers show inline from Markdown: ![B1](b1.svg). A series
whose values are None is drawn as a "not run" label instead of bars, so a
plot keeps its shape when a peer could not run.
"""
import html
import math

WIDTH, HEIGHT = 720, 360
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 70
COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1"]
FONT = 'font-family="sans-serif"'


def _esc(s):
    return html.escape(str(s), quote=True)


def nice_ticks(top, count=5):
    """Round tick values from 0 to at least top."""
    if top <= 0:
        return [0, 1]
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    n = math.ceil(top / step - 1e-9)
    return [i * step for i in range(n + 1)]


def fmt(v):
    """A short label: 12345 -> 12.3k, 0.5 -> 0.5."""
    if v >= 1e6:
        return f"{v / 1e6:.3g}M"
    if v >= 1e3:
        return f"{v / 1e3:.3g}k"
    return f"{v:.3g}"


def _frame(title, unit):
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="15" {FONT}>'
        f'{_esc(title)}</text>',
        f'<text x="16" y="{TOP + (HEIGHT - TOP - BOTTOM) / 2}" font-size="12" {FONT} '
        f'text-anchor="middle" transform="rotate(-90 16 {TOP + (HEIGHT - TOP - BOTTOM) / 2})">'
        f'{_esc(unit)}</text>',
    ]


def _legend(out, names, y):
    x = LEFT
    for i, name in enumerate(names):
        out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" '
                   f'fill="{COLORS[i % len(COLORS)]}"/>')
        out.append(f'<text x="{x + 16}" y="{y}" font-size="12" {FONT}>{_esc(name)}</text>')
        x += 28 + 7 * len(name)


def bar_chart(path, title, groups, series, unit):
    """groups: labels along x; series: [(name, [value or None per group],
    [(low, high) or None per group] or None)]; values drawn as bars with
    their label, (low, high) as a whisker (e.g. min-max over rounds)."""
    out = _frame(title, unit)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    values = [v for _, vals, _ in series for v in vals if v is not None]
    highs = [e[1] for _, _, errs in series if errs for e in errs if e]
    ticks = nice_ticks(max(values + highs + [0]) * 1.08)
    top = ticks[-1] or 1

    def y_of(v):
        return TOP + plot_h * (1 - v / top)

    for t in ticks:
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y_of(t):.1f}" y2="{y_of(t):.1f}" '
                   'stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y_of(t) + 4:.1f}" text-anchor="end" font-size="11" '
                   f'{FONT}>{fmt(t)}</text>')
    group_w = plot_w / max(len(groups), 1)
    bar_w = group_w * 0.8 / max(len(series), 1)
    for g, label in enumerate(groups):
        gx = LEFT + g * group_w + group_w * 0.1
        out.append(f'<text x="{LEFT + (g + 0.5) * group_w:.1f}" y="{HEIGHT - BOTTOM + 18}" '
                   f'text-anchor="middle" font-size="12" {FONT}>{_esc(label)}</text>')
        for s, (name, vals, errs) in enumerate(series):
            x = gx + s * bar_w
            v = vals[g]
            color = COLORS[s % len(COLORS)]
            if v is None:
                out.append(f'<text x="{x + bar_w / 2 + 4:.1f}" y="{TOP + plot_h - 6}" '
                           f'text-anchor="start" font-size="10" fill="#888" {FONT} '
                           f'transform="rotate(-90 {x + bar_w / 2 + 4:.1f} {TOP + plot_h - 6})">'
                           'not run</text>')
                continue
            out.append(f'<rect x="{x + 1:.1f}" y="{y_of(v):.1f}" width="{bar_w - 2:.1f}" '
                       f'height="{TOP + plot_h - y_of(v):.1f}" fill="{color}"/>')
            if errs and errs[g]:
                lo, hi = errs[g]
                cx = x + bar_w / 2
                out.append(f'<path d="M{cx:.1f} {y_of(lo):.1f}V{y_of(hi):.1f}M{cx - 4:.1f} '
                           f'{y_of(hi):.1f}h8M{cx - 4:.1f} {y_of(lo):.1f}h8" stroke="#333"/>')
            out.append(f'<text x="{x + bar_w / 2:.1f}" y="{y_of(v) - 4:.1f}" text-anchor="middle" '
                       f'font-size="10" {FONT}>{fmt(v)}</text>')
    out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" '
               'stroke="#333"/>')
    _legend(out, [name for name, _, _ in series], HEIGHT - 22)
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def cdf_chart(path, title, series, unit, log=False):
    """series: [(name, [samples] or None)]: the fraction of samples at or
    below x, one line per series; log=True for a logarithmic x axis."""
    out = _frame(title, "fraction of runs")
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    samples = [x for _, xs in series if xs for x in xs]
    lo = min(samples) if samples else 1
    hi = max(samples) if samples else 1
    if log:
        lo_l = math.floor(math.log10(max(lo, 1e-3)))
        hi_l = math.ceil(math.log10(max(hi, lo * 1.01, 1e-3)))
        ticks = [10 ** e * m for e in range(lo_l, hi_l + 1) for m in (1, 2, 5)
                 if 10 ** lo_l <= 10 ** e * m <= 10 ** hi_l]

        def x_of(v):
            return LEFT + plot_w * (math.log10(max(v, 10 ** lo_l)) - lo_l) / max(hi_l - lo_l, 1)
    else:
        ticks = nice_ticks(hi * 1.05)

        def x_of(v):
            return LEFT + plot_w * v / (ticks[-1] or 1)

    for t in ticks:
        out.append(f'<line y1="{TOP}" y2="{TOP + plot_h}" x1="{x_of(t):.1f}" x2="{x_of(t):.1f}" '
                   'stroke="#ddd"/>')
        out.append(f'<text y="{TOP + plot_h + 16}" x="{x_of(t):.1f}" text-anchor="middle" '
                   f'font-size="11" {FONT}>{fmt(t)}</text>')
    for q in (0, 0.25, 0.5, 0.75, 0.99, 1):
        y = TOP + plot_h * (1 - q)
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="{"#bbb" if q in (0.5, 0.99) else "#eee"}"/>')
        if q == 0.99:
            out.append(f'<text x="{WIDTH - RIGHT - 4}" y="{y + 12:.1f}" text-anchor="end" '
                       f'font-size="11" fill="#666" {FONT}>p99</text>')
        else:
            out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
                       f'{FONT}>{q:g}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - BOTTOM + 34}" text-anchor="middle" '
               f'font-size="12" {FONT}>{_esc(unit)}</text>')
    names = []
    for s, (name, xs) in enumerate(series):
        color = COLORS[s % len(COLORS)]
        if not xs:
            names.append(f"{name} (not run)")
            continue
        names.append(name)
        xs = sorted(xs)
        pts = []
        for i, v in enumerate(xs):
            y0 = TOP + plot_h * (1 - i / len(xs))
            y1 = TOP + plot_h * (1 - (i + 1) / len(xs))
            pts.append(f"{x_of(v):.1f},{y0:.1f} {x_of(v):.1f},{y1:.1f}")
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                   f'points="{" ".join(pts)}"/>')
    _legend(out, names, HEIGHT - 16)
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
