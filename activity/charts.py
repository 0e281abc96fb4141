"""Bar charts of daily figures as inline SVG, drawn on the server (no script, no inline style: the CSP allows
neither; colours come from classes in porte.css, geometry from SVG attributes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

WIDTH, HEIGHT = 300, 110
TOP, BOTTOM, LEFT = 14, 14, 2


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str
    missing: bool  # no measurement that day (drawn as a short grey mark)


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    top_label: str
    first_day: str
    last_day: str
    baseline: float
    summary: str


def humanize(value: float | None, unit: str) -> str:
    if value is None:
        return "no data"
    if unit == "ratio":
        return f"{value * 100:.2f} %"
    if unit == "seconds":
        if value < 120:
            return f"{value:.1f} s"
        if value < 7200:
            return f"{value / 60:.1f} min"
        return f"{value / 3600:.1f} h"
    return f"{value:,.0f}"


def bar_chart(values: Sequence[float | None], days: list[date], unit: str, label: str) -> Chart:
    top = 1.0 if unit == "ratio" else max([v for v in values if v is not None] + [0.0]) or 1.0
    plot = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT) / max(len(values), 1)
    bars = []
    for index, (value, day) in enumerate(zip(values, days, strict=True)):
        height = 2.0 if value is None else max(plot * value / top, 1.0 if value else 0.0)
        bars.append(
            Bar(
                x=round(LEFT + index * slot + 1, 1),
                y=round(TOP + plot - height, 1),
                width=round(slot - 2, 1),
                height=round(height, 1),
                title=f"{day:%Y-%m-%d}: {humanize(value, unit)}",
                missing=value is None,
            )
        )
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        bars=bars,
        top_label=humanize(top, unit),
        first_day=f"{days[0]:%b %d}" if days else "",
        last_day=f"{days[-1]:%b %d}" if days else "",
        baseline=TOP + plot,
        summary=f"{label} per day, {days[0]:%Y-%m-%d} to {days[-1]:%Y-%m-%d}" if days else label,
    )
