"""Charts rendered with matplotlib (Agg) and embedded in HTML as base64 PNG, so reports are one file.

Labels are Chinese when a CJK font is installed (`cjk_font()`; Debian: fonts-wqy-zenhei or
fonts-noto-cjk); without one, callers pass English labels so no glyph is drawn as a box.
"""

from __future__ import annotations

import base64
import io
import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

TIER_COLOURS = {"red": "#c0392b", "yellow": "#e6b800", "green": "#27ae60"}
TARGET_STYLES = ["--", ":", "-."]
CJK_FONTS = (
    "WenQuanYi Zen Hei",
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Source Han Sans SC",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
)


def cjk_font() -> str | None:
    """The first installed font that draws Chinese, or None."""
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    found = next((name for name in CJK_FONTS if name in installed), None)
    if found is None:
        # matplotlib's font cache may predate the font's installation: look at the system files once
        for path in font_manager.findSystemFonts():
            if any(key in path.lower() for key in ("wqy", "notosanscjk", "noto-cjk", "sourcehansans")):
                font_manager.fontManager.addfont(path)
        installed = {font.name for font in font_manager.fontManager.ttflist}
        found = next((name for name in CJK_FONTS if name in installed), None)
    return found


def use_cjk_font() -> bool:
    """Put an installed CJK font first in matplotlib's sans-serif list; False when there is none."""
    font = cjk_font()
    if font is None:
        return False
    # WenQuanYi Zen Hei has only a "medium" weight; matplotlib says so at WARNING for every chart
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    families = list(matplotlib.rcParams["font.sans-serif"])
    if families[:1] != [font]:
        matplotlib.rcParams["font.sans-serif"] = [font, *[f for f in families if f != font]]
    matplotlib.rcParams["font.family"] = "sans-serif"
    matplotlib.rcParams["axes.unicode_minus"] = False
    return True


def _data_uri(fig: plt.Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _percent_axis(ax: plt.Axes, axis: str = "y") -> None:
    formatter = matplotlib.ticker.PercentFormatter(1.0, decimals=0)
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(formatter)


def units_chart(
    table: pd.DataFrame, title: str, is_rate: bool, target: float | dict[str, float] | None
) -> str | None:
    """Horizontal bars per unit with Wilson whiskers and the target line(s) (a value, or label -> value);
    hidden cells are left out. Units are labelled by the `name` column when there is one, else `unit`.

    None when every cell is hidden (nothing to draw)."""
    shown = table.dropna(subset=["value"]).sort_values("value")
    if shown.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, max(2.0, 0.28 * len(shown) + 1)))
    values = shown["value"].to_numpy(float)
    positions = np.arange(len(shown))
    ax.barh(positions, values, color="#4a78b5")
    labels = shown["name"] if "name" in shown else shown["unit"]
    ax.set_yticks(positions, labels.astype(str))
    if shown["ci_low"].notna().any():
        err = np.vstack([values - shown["ci_low"].to_numpy(float), shown["ci_high"].to_numpy(float) - values])
        ax.errorbar(values, np.arange(len(shown)), xerr=err, fmt="none", ecolor="#333", capsize=2, lw=0.8)
    if target is not None:
        targets = (
            target if isinstance(target, dict) else {f"target {target:.0%}" if is_rate else "target": target}
        )
        for index, (label, value) in enumerate(targets.items()):
            ax.axvline(value, color="#c0392b", ls=TARGET_STYLES[index % 3], lw=1.2, label=label)
        ax.legend(loc="lower right", fontsize=8)
        if is_rate:
            ax.set_xlim(0, max(1.0, float(np.nanmax(values))))
    if is_rate:
        _percent_axis(ax, "x")
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=8)
    return _data_uri(fig)


def trend_chart(series: dict[str, pd.DataFrame], title: str, targets: dict[str, float] | None = None) -> str:
    """Lines over periods (one per label) with Wilson bands; dashed target lines."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for label, frame in series.items():
        x = np.arange(len(frame))
        ax.plot(x, frame["value"].to_numpy(float), marker="o", ms=3, label=label)
        if frame["ci_low"].notna().any():
            ax.fill_between(x, frame["ci_low"].to_numpy(float), frame["ci_high"].to_numpy(float), alpha=0.15)
        ax.set_xticks(x, frame["period"].astype(str), rotation=45, fontsize=8)
    for index, (label, value) in enumerate((targets or {}).items()):
        ax.axhline(value, color="#c0392b", ls=TARGET_STYLES[index % 3], lw=1.2)
        ax.annotate(label, (0, value), fontsize=8, color="#c0392b", va="bottom")
    _percent_axis(ax)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3)
    return _data_uri(fig)


def tier_mix_chart(
    mix: pd.DataFrame,
    title: str = "Tier mix of managed patients by run date",
    names: dict[str, str] | None = None,
) -> str | None:
    """Stacked bars of tier shares, one bar per run (as_of); None when every share is hidden."""
    if mix["share"].isna().all():
        return None
    pivot = mix.pivot_table(index="as_of", columns="tier", values="share", aggfunc="sum").fillna(0)
    fig, ax = plt.subplots(figsize=(7, 3))
    bottom = np.zeros(len(pivot))
    for tier, colour in TIER_COLOURS.items():
        if tier in pivot:
            label = (names or {}).get(tier, tier)
            ax.bar(np.arange(len(pivot)), pivot[tier], bottom=bottom, color=colour, label=label)
            bottom += pivot[tier].to_numpy(float)
    ax.set_xticks(np.arange(len(pivot)), pivot.index.astype(str))
    _percent_axis(ax)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    ax.tick_params(labelsize=8)
    return _data_uri(fig)
