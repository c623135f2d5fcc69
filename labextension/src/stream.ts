/**
 * The panel's task stream: the StreamModel's bars drawn as an SVG, the seconds since the
 * oldest bar across (5 to `window`, as the kernel's SVG), one lane per worker and per
 * actor down, `now` at the right.
 *
 * The kernel coalesces runs into bars and picks their colours
 * (`jupyter_futures/jupyter/stream_bars.py`), so this only places rectangles: a few per
 * lane and second however many tasks run. The view is redrawn when bars arrive and, while
 * any are in view, four times a second so that it scrolls. Hovering a bar shows what it
 * ran below the chart (and in its tooltip). Text from the kernel goes through
 * `textContent` only.
 */
import { IStreamBar, StreamModel } from './model';

const SVG = 'http://www.w3.org/2000/svg';
const ROW_H = 10;
const LANE_GAP = 4;
const LABEL_W = 84;
const AXIS_H = 14;
const MIN_SPAN = 5;
const TICK_STEPS = [1, 2, 5, 10, 15, 30, 60];

/** Seconds the chart spans: since the oldest bar, from 5 to `window` (`StreamBuffer.span`). */
export function spanOf(bars: IStreamBar[], now: number, window: number): number {
  if (!bars.length) {
    return window;
  }
  const earliest = bars.reduce((m, bar) => Math.min(m, bar[6]), Infinity);
  return Math.min(window, Math.max(MIN_SPAN, now - earliest));
}

/** Seconds before now marked on the axis: at most five (`ticks` in stream_bars.py). */
export function ticks(span: number): number[] {
  const step = TICK_STEPS.find(t => span / t <= 4) ?? TICK_STEPS[TICK_STEPS.length - 1];
  const out: number[] = [];
  for (let k = 0; k * step <= span; k++) {
    out.push(k * step);
  }
  return out;
}

function svgEl(tag: string, attrs: Record<string, string | number>): SVGElement {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    node.setAttribute(key, String(value));
  }
  return node;
}

/** `0.00035` -> `"350 µs"`, `0.0125` -> `"12.5 ms"`, `3.21` -> `"3.2 s"`. */
export function tookText(s: number): string {
  if (s < 0.001) {
    return `${Math.round(s * 1e6)} µs`;
  }
  if (s < 1) {
    return `${Number((s * 1000).toPrecision(3))} ms`;
  }
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

/** What hovering a bar says (as `Bar.title` in the kernel). */
export function barTitle(bar: IStreamBar): string {
  const [, lane, , name, state, , , , count, busy] = bar;
  const runs = count > 1 ? `${count.toLocaleString('en-US')} runs of ${name}` : name;
  const each = count > 1 ? `, ${tookText(busy / count)} each` : '';
  return `${runs} · ${tookText(busy)}${each} · ${lane}${state === 'done' ? '' : ` · ${state}`}`;
}

/** Workers first, by number; then actors, by name. */
function laneOrder(a: string, b: string): number {
  const key = (lane: string): [number, number, string] => {
    const match = /^worker (.*)$/.exec(lane);
    if (!match) {
      return [1, 0, lane];
    }
    return /^\d+$/.test(match[1]) ? [0, Number(match[1]), ''] : [0, 2 ** 30, match[1]];
  };
  const [x, y] = [key(a), key(b)];
  return x[0] - y[0] || x[1] - y[1] || x[2].localeCompare(y[2]);
}

/** A lane's label: `worker 2`, a Dask worker by its address alone, long names cut. */
function shortLane(lane: string): string {
  const label = /^worker \d+$/.test(lane) ? lane : lane.replace(/^worker /, '');
  return label.length <= 16 ? label : `${label.slice(0, 6)}…${label.slice(-9)}`;
}

/** The chart of `bars` at kernel time `now`, the last `span` seconds, `width` pixels wide. */
export function streamChart(
  bars: IStreamBar[],
  now: number,
  span: number,
  width: number,
  onHover: (bar: IStreamBar | null) => void
): SVGElement {
  const rows = new Map<string, number>();
  for (const bar of bars) {
    rows.set(bar[1], Math.max(rows.get(bar[1]) ?? 0, bar[2] + 1));
  }
  const lanes = [...rows.keys()].sort(laneOrder);
  const plot = Math.max(40, width - LABEL_W);
  const top = new Map<string, number>();
  let y = 0;
  for (const lane of lanes) {
    top.set(lane, y);
    y += (rows.get(lane) ?? 1) * ROW_H + LANE_GAP;
  }
  const height = Math.max(y, 16) + AXIS_H;
  const chart = svgEl('svg', {
    class: 'jf-Cluster-streamChart',
    width,
    height,
    viewBox: `0 0 ${width} ${height}`
  });
  for (const lane of lanes) {
    const laneTop = top.get(lane) ?? 0;
    const laneH = (rows.get(lane) ?? 1) * ROW_H;
    const label = svgEl('text', {
      class: 'jf-Cluster-streamLane',
      x: LABEL_W - 4,
      y: laneTop + laneH / 2 + 4,
      'text-anchor': 'end'
    });
    label.textContent = shortLane(lane);
    chart.append(
      label,
      svgEl('rect', {
        class: 'jf-Cluster-streamTrack',
        x: LABEL_W,
        y: laneTop,
        width: plot,
        height: laneH
      })
    );
  }
  const window = span;
  const from = now - window;
  for (const bar of bars) {
    const [id, lane, row, name, state, colour, start, end] = bar;
    const x0 = LABEL_W + Math.max(0, (start - from) / window) * plot;
    const x1 = LABEL_W + Math.min(1, Math.max(0, (end - from) / window)) * plot;
    const rect = svgEl('rect', {
      class: 'jf-Cluster-streamBar',
      x: x0.toFixed(1),
      y: (top.get(lane) ?? 0) + row * ROW_H + 1,
      width: Math.max(1, x1 - x0).toFixed(1),
      height: ROW_H - 2,
      fill: colour,
      'data-bar': id,
      'data-state': state
    });
    rect.dataset.name = name;
    const title = svgEl('title', {});
    title.textContent = barTitle(bar);
    rect.append(title);
    rect.addEventListener('mouseenter', () => onHover(bar));
    rect.addEventListener('mouseleave', () => onHover(null));
    chart.append(rect);
  }
  const axis = Math.max(y, 16);
  for (const t of ticks(window)) {
    const x = LABEL_W + (1 - t / window) * plot;
    const tick = svgEl('text', {
      class: 'jf-Cluster-streamTick',
      x: x.toFixed(1),
      y: axis + 11,
      'text-anchor': t === 0 ? 'end' : 'middle'
    });
    tick.textContent = t === 0 ? 'now' : `-${t} s`;
    chart.append(
      svgEl('line', { class: 'jf-Cluster-streamGrid', x1: x, y1: 0, x2: x, y2: axis }),
      tick
    );
  }
  return chart;
}

/** The "Task stream" section's body: the chart, a hover line, and its own redraw timer. */
export class StreamView {
  constructor(model: StreamModel) {
    this._model = model;
    this.node = document.createElement('div');
    this.node.className = 'jf-Cluster-stream';
    this._chart = document.createElement('div');
    this._hover = document.createElement('div');
    this._hover.className = 'jf-Cluster-streamHover jf-Cluster-dim';
    this.node.append(this._chart, this._hover);
    model.changed.connect(this.render, this);
  }

  /** Scroll while shown: redraw four times a second as long as bars are in view. */
  set active(value: boolean) {
    this._active = value;
    this.render();
  }

  dispose(): void {
    this._model.changed.disconnect(this.render, this);
    this._stopTimer();
  }

  render(): void {
    const bars = this._model.bars();
    if (!bars.length) {
      const empty = document.createElement('p');
      empty.className = 'jf-Cluster-dim';
      empty.textContent = `No task finished in the last ${Math.round(this._model.window)} s.`;
      this._chart.replaceChildren(empty);
      this._hover.textContent = '';
      this._stopTimer();
      return;
    }
    const width = Math.max(160, this.node.clientWidth || 280);
    const now = this._model.now();
    this._chart.replaceChildren(
      streamChart(bars, now, spanOf(bars, now, this._model.window), width, bar => {
        this._hover.textContent = bar ? barTitle(bar) : '';
      })
    );
    if (this._active && this._timer === null) {
      this._timer = window.setInterval(() => this.render(), 250);
    } else if (!this._active) {
      this._stopTimer();
    }
  }

  private _stopTimer(): void {
    if (this._timer !== null) {
      window.clearInterval(this._timer);
      this._timer = null;
    }
  }

  readonly node: HTMLElement;
  private _model: StreamModel;
  private _chart: HTMLElement;
  private _hover: HTMLElement;
  private _active = false;
  private _timer: number | null = null;
}
