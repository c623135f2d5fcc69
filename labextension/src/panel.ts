/**
 * The Cluster sidebar: renders a ClusterModel as plain DOM.
 *
 * Every snapshot (at most about two a second) rebuilds the body; it is a few dozen
 * nodes, so this stays cheap and keeps the view a pure function of the model. Text from
 * the kernel (actor class names, worker logs) only ever goes through `textContent`.
 *
 * The Task stream section below it (stream.ts) draws the bars the kernel sends apart from
 * the snapshots, and scrolls on its own while the panel is shown. The Logs section stays
 * across snapshots (so it stays open): opening it, or pressing its refresh, asks the
 * kernel for what the workers wrote outside tasks.
 */
import { refreshIcon } from '@jupyterlab/ui-components';
import { ISignal, Signal } from '@lumino/signaling';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { formatBytes, formatPercent, fraction } from './format';
import {
  ClusterModel,
  FUTURE_STATES,
  IActorStatus,
  IClusterStatus,
  IGpuStatus,
  IMessagesStatus,
  IQueueStatus,
  IWorkerStatus
} from './model';
import { StreamView } from './stream';

type Child = Node | string | null;

function el(tag: string, className: string, ...children: Child[]): HTMLElement {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  for (const child of children) {
    if (child !== null) {
      node.append(child);
    }
  }
  return node;
}

/** A labelled bar: `label [=====     ] text`. */
function bar(label: string, used: number, text: string, kind: string): HTMLElement {
  const fill = el('div', `jf-Cluster-barFill jf-Cluster-barFill-${kind}`);
  fill.style.width = `${(used * 100).toFixed(1)}%`;
  const row = el(
    'div',
    'jf-Cluster-bar',
    el('span', 'jf-Cluster-barLabel', label),
    el('div', 'jf-Cluster-barTrack', fill),
    el('span', 'jf-Cluster-barText', text)
  );
  row.title = `${label}: ${text}`;
  return row;
}

/** A worker's GPU: its memory used (the bar), how busy it is, its name on hover. */
function gpuBar(g: IGpuStatus): HTMLElement {
  const known = g.memory_used !== null && g.memory_total;
  const memory = known
    ? `${formatBytes(g.memory_used ?? 0)} / ${formatBytes(g.memory_total ?? 0)}`
    : '?';
  const busy = g.utilization === null ? '' : ` · ${formatPercent(g.utilization / 100)}`;
  const row = bar(
    `GPU ${g.index}`,
    fraction(g.memory_used ?? 0, g.memory_total ?? 0),
    memory + busy,
    'gpu'
  );
  row.classList.add('jf-Cluster-gpu');
  row.title = `GPU ${g.index}${g.name ? ` (${g.name})` : ''}: ${memory}${busy ? `, ${busy.slice(3)} busy` : ''}`;
  return row;
}

/** Where an engine keeps its objects: our shared-memory store, or Dask's managed memory. */
function storeName(s: IClusterStatus): { label: string; where: string } {
  return s.engine === 'dask'
    ? { label: 'Managed', where: "in Dask workers' memory" }
    : { label: 'Store', where: 'in shared memory' };
}

/** A worker as the panel names it: `worker 2` locally, `127.0.0.2:40131` on Dask. */
function workerLabel(id: number | string): string {
  return typeof id === 'number' ? `worker ${id}` : id.replace(/^[a-z]+:\/\//, '');
}

function workerRow(w: IWorkerStatus, storeLabel: string): HTMLElement {
  const cpus = w.capacity['cpu'] || 1;
  const busy = w.running.length ? `${w.running.length} running` : 'idle';
  const head = el(
    'div',
    'jf-Cluster-rowHead',
    el('span', 'jf-Cluster-workerName', workerLabel(w.id)),
    el('span', 'jf-Cluster-dim', w.pid === null ? '' : `pid ${w.pid}`),
    el(
      'span',
      w.alive ? 'jf-Cluster-badge' : 'jf-Cluster-badge jf-mod-warn',
      w.alive ? busy : 'starting'
    )
  );
  const store = `${formatBytes(w.store_used)} / ${formatBytes(w.store_capacity)}`;
  const row = el(
    'div',
    'jf-Cluster-worker',
    head,
    bar('CPU', fraction(w.cpu_percent, cpus * 100), formatPercent(w.cpu_percent / 100), 'cpu'),
    bar('RSS', fraction(w.rss, w.capacity['ram']), formatBytes(w.rss), 'rss'),
    bar(storeLabel, fraction(w.store_used, w.store_capacity), store, 'store')
  );
  for (const g of w.gpus ?? []) {
    row.append(gpuBar(g));
  }
  row.dataset.workerId = String(w.id);
  row.title = typeof w.id === 'number' ? `worker ${w.id}` : w.id;
  if (w.actors.length || w.spilled) {
    const extra = [
      w.actors.length ? `${w.actors.length} actor${w.actors.length > 1 ? 's' : ''}` : '',
      w.spilled ? `${formatBytes(w.spilled)} spilled` : ''
    ].filter(Boolean);
    row.append(el('div', 'jf-Cluster-dim', extra.join(' · ')));
  }
  return row;
}

function futuresRow(futures: Record<string, number>): HTMLElement {
  const states = [
    ...FUTURE_STATES,
    ...Object.keys(futures)
      .filter(s => !FUTURE_STATES.includes(s))
      .sort()
  ];
  const chips = states.map(state => {
    const count = futures[state] ?? 0;
    const chip = el(
      'span',
      `jf-Cluster-chip jf-Cluster-state-${state}${count ? '' : ' jf-mod-zero'}`,
      el('span', 'jf-Cluster-chipCount', String(count)),
      ` ${state}`
    );
    chip.dataset.state = state;
    return chip;
  });
  return el('div', 'jf-Cluster-chips', ...chips);
}

/** Pending work of one cell at one priority: `In[7] · priority 1 · 2,000 pending`. */
function queueRow(q: IQueueStatus): HTMLElement {
  const cell = q.group > 0 ? `In[${q.group}]` : 'outside cells';
  const row = el(
    'div',
    'jf-Cluster-rowHead',
    el('span', 'jf-Cluster-workerName', cell),
    el('span', 'jf-Cluster-dim', `priority ${q.priority}`),
    el('span', 'jf-Cluster-badge', `${q.tasks.toLocaleString()} pending`)
  );
  row.dataset.group = String(q.group);
  return row;
}

function actorRow(a: IActorStatus): HTMLElement {
  const head = el(
    'div',
    'jf-Cluster-rowHead',
    el('span', 'jf-Cluster-actorName', `${a.class} #${a.id}`),
    el('span', 'jf-Cluster-dim', a.worker === null ? '' : workerLabel(a.worker)),
    el('span', `jf-Cluster-badge jf-Cluster-actor-${a.state}`, a.state)
  );
  const calls = `${a.calls_done} call${a.calls_done === 1 ? '' : 's'} done, ${a.calls_queued} queued`;
  const row = el('div', 'jf-Cluster-actor', head, el('div', 'jf-Cluster-dim', calls));
  row.dataset.actorId = String(a.id);
  return row;
}

/** Control frames dropped unread: a hint that something else talks to the cluster's sockets. */
function droppedRow(m: IMessagesStatus): HTMLElement {
  const reasons = Object.entries(m.dropped_by)
    .filter(([, n]) => n > 0)
    .map(([why, n]) => `${n} ${why}`)
    .join(', ');
  return el(
    'p',
    'jf-Cluster-dropped',
    `${m.dropped} dropped (kernel ${m.kernel}, workers ${m.workers}): ${reasons}`
  );
}

function section(title: string, ...body: Child[]): HTMLElement {
  return el('section', 'jf-Cluster-section', el('h3', 'jf-Cluster-sectionTitle', title), ...body);
}

function clusterBody(s: IClusterStatus): HTMLElement[] {
  const total = Object.values(s.futures).reduce((a, b) => a + b, 0);
  const store = storeName(s);
  return [
    section(
      `Workers (${s.workers.length})`,
      ...(s.workers.length
        ? s.workers.map(w => workerRow(w, store.label))
        : [el('p', 'jf-Cluster-dim', 'Starting workers…')])
    ),
    section(`Futures (${total})`, futuresRow(s.futures)),
    ...(s.queued?.length ? [section('Queued by cell', ...s.queued.slice(0, 8).map(queueRow))] : []),
    section(
      `Actors (${s.actors.length})`,
      ...(s.actors.length ? s.actors.map(actorRow) : [el('p', 'jf-Cluster-dim', 'No actors.')])
    ),
    section(
      'Objects',
      el(
        'p',
        'jf-Cluster-objects',
        `${s.objects.count} ${store.where}, ${formatBytes(s.objects.bytes)}` +
          (s.objects.spilled ? `, ${formatBytes(s.objects.spilled)} spilled to disk` : '')
      )
    ),
    ...(s.messages?.dropped ? [section('Dropped messages', droppedRow(s.messages))] : [])
  ];
}

/** One block per worker: its label, then its log (the end of it) as preformatted text. */
function logsBody(logs: Record<string, string> | null): HTMLElement[] {
  if (logs === null) {
    return [];
  }
  const ids = Object.keys(logs);
  if (!ids.length) {
    return [el('p', 'jf-Cluster-dim', 'No worker logs here (threads write to the kernel itself).')];
  }
  return ids.map(id => {
    const label = /^\d+$/.test(id) ? workerLabel(Number(id)) : workerLabel(id);
    const text = logs[id] || '(nothing yet)';
    const block = el(
      'div',
      'jf-Cluster-log',
      el('div', 'jf-Cluster-workerName', label),
      el('pre', 'jf-Cluster-logText', text)
    );
    block.dataset.workerId = id;
    return block;
  });
}

const MESSAGES: Record<string, string> = {
  'no-notebook': 'Open a notebook to see its cluster.',
  'no-kernel': 'This notebook has no running kernel.',
  connecting: 'Connecting to the kernel…',
  'not-loaded':
    'jupyter_futures is not loaded in this kernel. Run `%load_ext jupyter_futures` or `jf.init()`.',
  idle: 'No cluster is running in this kernel. Start one with `jf.init()`.'
};

export class ClusterPanel extends Widget {
  constructor(model: ClusterModel) {
    super();
    this._model = model;
    this.addClass('jf-Cluster');
    const refresh = el('button', 'jp-Button jf-Cluster-refresh');
    refresh.title = 'Refresh';
    refresh.setAttribute('aria-label', 'Refresh');
    refreshIcon.element({
      container: refresh,
      elementPosition: 'center',
      height: '16px',
      width: '16px'
    });
    refresh.addEventListener('click', () => this._refreshRequested.emit());
    this._title = el('span', 'jf-Cluster-title', 'Cluster');
    this._subtitle = el('div', 'jf-Cluster-subtitle');
    this._body = el('div', 'jf-Cluster-body');
    this._streamView = new StreamView(model.stream);
    this._stream = section('Task stream', this._streamView.node);
    this._stream.classList.add('jf-Cluster-streamSection');
    this._logsText = el('div', 'jf-Cluster-logsText');
    const logsRefresh = el('button', 'jp-Button jf-Cluster-logsRefresh', 'Refresh');
    logsRefresh.addEventListener('click', () => this._logsRequested.emit());
    this._logs = el(
      'details',
      'jf-Cluster-section jf-Cluster-logs',
      el('summary', 'jf-Cluster-sectionTitle', 'Logs'),
      el('p', 'jf-Cluster-dim', 'What workers wrote outside tasks. ', logsRefresh),
      this._logsText
    ) as HTMLDetailsElement;
    this._logs.addEventListener('toggle', () => {
      if (this._logs.open) {
        this._logsRequested.emit();
      }
    });
    this.node.append(
      el(
        'header',
        'jf-Cluster-header',
        el('div', 'jf-Cluster-titleRow', this._title, refresh),
        this._subtitle
      ),
      this._body,
      this._stream,
      this._logs
    );
    model.changed.connect(this._render, this);
    this._render();
  }

  /** Emitted when the panel is shown (`true`) or hidden (`false`). */
  get visibilityChanged(): ISignal<this, boolean> {
    return this._visibilityChanged;
  }

  /** Emitted when the user asks for a refresh. */
  get refreshRequested(): ISignal<this, void> {
    return this._refreshRequested;
  }

  /** Emitted when the user opens the Logs section or refreshes it. */
  get logsRequested(): ISignal<this, void> {
    return this._logsRequested;
  }

  protected override onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._streamView.active = true;
    this._visibilityChanged.emit(true);
  }

  protected override onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._streamView.active = false;
    this._visibilityChanged.emit(false);
  }

  override dispose(): void {
    this._model.changed.disconnect(this._render, this);
    this._streamView.dispose();
    super.dispose();
  }

  private _render(): void {
    const model = this._model;
    const status = model.status;
    this.node.dataset.state = model.state;
    this._subtitle.textContent = model.notebook;
    this._logs.hidden = !(model.state === 'connected' && status);
    this._stream.hidden = this._logs.hidden;
    this._logsText.replaceChildren(...logsBody(model.logs));
    if (model.state === 'connected' && status) {
      const on = status.engine === 'dask' ? ` on Dask ${status.address ?? ''}` : '';
      this._subtitle.textContent = `${model.notebook} · cluster ${status.cluster}${on}`;
      this._body.replaceChildren(...clusterBody(status));
      return;
    }
    const key = model.state === 'connected' ? 'idle' : model.state;
    this._body.replaceChildren(el('p', 'jf-Cluster-message', MESSAGES[key]));
  }

  private _model: ClusterModel;
  private _title: HTMLElement;
  private _subtitle: HTMLElement;
  private _body: HTMLElement;
  private _stream: HTMLElement;
  private _streamView: StreamView;
  private _logs: HTMLDetailsElement;
  private _logsText: HTMLElement;
  private _logsRequested = new Signal<this, void>(this);
  private _visibilityChanged = new Signal<this, boolean>(this);
  private _refreshRequested = new Signal<this, void>(this);
}
