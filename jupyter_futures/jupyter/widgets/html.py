"""Small HTML pieces shared by the widgets, styled with JupyterLab's theme variables.

Every colour and font is ``var(--jp-..., fallback)``: the theme's value in JupyterLab
(light or dark), the fallback in nbviewer, nbconvert and classic front ends. All text
that comes from user data goes through :func:`esc`.
"""

from __future__ import annotations

import html

FONT = "font-family: var(--jp-ui-font-family, sans-serif); font-size: var(--jp-ui-font-size1, 13px)"
FG = "var(--jp-ui-font-color1, black)"
FG_DIM = "var(--jp-ui-font-color2, #616161)"
BORDER = "var(--jp-border-color2, #e0e0e0)"
TRACK = "var(--jp-layout-color2, #eeeeee)"
COLORS = {
    "pending": "var(--jp-ui-font-color3, #9e9e9e)",
    "running": "var(--jp-brand-color1, #1976d2)",
    "done": "var(--jp-success-color1, #388e3c)",
    "failed": "var(--jp-error-color1, #d32f2f)",
    "cancelled": "var(--jp-warn-color1, #f57c00)",
    "released": "var(--jp-ui-font-color3, #9e9e9e)",
}


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def box(inner: str, title: str = "") -> str:
    """The frame every widget's HTML sits in."""
    head = f'<div style="font-weight: 600; margin-bottom: 4px">{esc(title)}</div>' if title else ""
    return (
        f'<div class="jf-widget" style="{FONT}; color: {FG}; line-height: 1.4; '
        f'padding: 2px 0">{head}{inner}</div>'
    )


def dot(state: str) -> str:
    color = COLORS.get(state, COLORS["pending"])
    return (
        f'<span style="display: inline-block; width: 0.7em; height: 0.7em; border-radius: 50%; '
        f'background: {color}; margin-right: 0.4em; vertical-align: baseline"></span>'
    )


def bar(fraction: float, color: str = COLORS["running"], width: str = "10em", label: str = "") -> str:
    """A horizontal bar, ``fraction`` (0..1) filled."""
    pct = max(0.0, min(1.0, fraction)) * 100
    text = f'<span style="margin-left: 0.5em; color: {FG_DIM}">{esc(label)}</span>' if label else ""
    return (
        f'<span style="display: inline-block; width: {width}; height: 0.8em; background: {TRACK}; '
        f'border: 1px solid {BORDER}; border-radius: 2px; vertical-align: middle; overflow: hidden">'
        f'<span style="display: block; width: {pct:.1f}%; height: 100%; background: {color}"></span>'
        f"</span>{text}"
    )


def stacked_bar(parts: list[tuple[float, str]], width: str = "24em") -> str:
    """A bar of several coloured segments (fractions of the whole)."""
    segs = "".join(
        f'<span style="display: inline-block; width: {max(0.0, min(1.0, f)) * 100:.2f}%; height: 100%; '
        f'background: {color}"></span>'
        for f, color in parts
        if f > 0
    )
    return (
        f'<span style="display: inline-flex; width: {width}; height: 1em; background: {TRACK}; '
        f'border: 1px solid {BORDER}; border-radius: 2px; vertical-align: middle; overflow: hidden">'
        f"{segs}</span>"
    )


def table(header: list[str], rows: list[list[str]]) -> str:
    """A compact table; cells are HTML already (escape user text before)."""
    cell = f"padding: 1px 10px 1px 0; text-align: left; border-bottom: 1px solid {BORDER}"
    head = "".join(f'<th style="{cell}; color: {FG_DIM}; font-weight: 500">{h}</th>' for h in header)
    body = "".join("<tr>" + "".join(f'<td style="{cell}">{c}</td>' for c in r) + "</tr>" for r in rows)
    head = f"<tr>{head}</tr>" if head else ""
    return f'<table style="border-collapse: collapse; margin: 2px 0 6px 0">{head}{body}</table>'


def dim(text: str) -> str:
    return f'<span style="color: {FG_DIM}">{text}</span>'


_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def nbytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``: binary units, as the JupyterLab panel (``format.ts``) and
    ``%futures status`` show them."""
    value, unit = max(0.0, float(n)), 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    digits = 0 if unit == 0 or value >= 100 else 1
    return f"{value:.{digits}f} {_UNITS[unit]}"


def seconds(s: float) -> str:
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 60:
        return f"{s:.1f} s"
    minutes, sec = divmod(int(s), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
