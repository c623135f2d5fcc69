/**
 * What the Cluster panel shows: the connection state and the latest snapshot.
 *
 * The snapshot types mirror `Client.status()` in `jupyter_futures/client.py`; the kernel
 * sends them over the comm defined in `jupyter_futures/labcomm.py`.
 */
import { ISignal, Signal } from '@lumino/signaling';

/** The comm target registered by `jupyter_futures.labcomm.register_comm_target`. */
export const COMM_TARGET = 'jupyter_futures.dashboard';

export interface IWorkerStatus {
  id: number | string;
  pid: number | null;
  alive: boolean;
  cpu_percent: number;
  rss: number;
  store_used: number;
  store_capacity: number;
  spilled: number;
  objects: number;
  actors: Array<number | string>;
  running: Array<number | string>;
  capacity: Record<string, number>;
  /** Its devices (`jupyter_futures.gpus.GpuStats`); absent from kernels before GPUs. */
  gpus?: IGpuStatus[];
}

/** One of a worker's GPUs, the whole device's figures (null: not known). */
export interface IGpuStatus {
  index: number;
  name: string;
  utilization: number | null;
  memory_used: number | null;
  memory_total: number | null;
}

export interface IActorStatus {
  id: number | string;
  class: string;
  worker: number | string | null;
  state: string;
  calls_done: number;
  calls_queued: number;
}

/** Futures not started yet of one cell (`group`: its number; 0: outside cells) and priority. */
export interface IQueueStatus {
  group: number;
  priority: number;
  tasks: number;
}

/** Control frames dropped unread (bad signature, replayed, short, ...), by reason. */
export interface IMessagesStatus {
  dropped: number;
  dropped_by: Record<string, number>;
  kernel: number;
  workers: number;
}

export interface IClusterStatus {
  cluster: string;
  workers: IWorkerStatus[];
  futures: Record<string, number>;
  actors: IActorStatus[];
  objects: { count: number; bytes: number; spilled: number };
  kernel_store?: { used: number; capacity: number; objects: number };
  engine?: string;
  address?: string;
  queued?: IQueueStatus[];
  messages?: IMessagesStatus;
}

/** Kernel to panel. */
export interface IStatusMessage {
  type: 'status';
  status: IClusterStatus | null;
}

/** Panel to kernel. */
export interface IRefreshMessage {
  type: 'refresh';
}

/** Panel to kernel: send what the workers wrote outside tasks. */
export interface ILogsRequest {
  type: 'logs';
}

/** Kernel to panel: the end of each worker's log, by worker id (`null`: no cluster). */
export interface ILogsMessage {
  type: 'logs';
  logs: Record<string, string> | null;
}

/**
 * One bar of the task stream (`Bar.as_json` in `jupyter_futures/jupyter/stream_bars.py`):
 * `count` runs of the future name `name`, back to back on row `row` of lane `lane`, from
 * `start` to `end` (the kernel's monotonic clock, seconds), taking `busy` seconds together.
 */
export type IStreamBar = [
  id: number,
  lane: string,
  row: number,
  name: string,
  state: string,
  colour: string,
  start: number,
  end: number,
  count: number,
  busy: number
];

/** Kernel to panel: bars made or grown since the last message (`reset`: forget the rest). */
export interface IStreamMessage {
  type: 'stream';
  now: number;
  window: number;
  reset: boolean;
  bars: IStreamBar[];
}

/** The task stream as the panel keeps it: the bars by id, and the kernel's clock. */
export class StreamModel {
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Seconds shown, as the kernel says. */
  get window(): number {
    return this._window;
  }

  /** The kernel's clock now, as far as the panel can tell (seconds). */
  now(): number {
    return Date.now() / 1000 + this._offset;
  }

  /** The bars still in the window, oldest first. */
  bars(): IStreamBar[] {
    const cutoff = this.now() - this._window;
    for (const [id, bar] of this._bars) {
      if (bar[7] < cutoff) {
        this._bars.delete(id);
      }
    }
    return [...this._bars.values()];
  }

  apply(message: IStreamMessage): void {
    if (message.reset) {
      this._bars.clear();
    }
    this._window = message.window;
    this._offset = message.now - Date.now() / 1000;
    for (const bar of message.bars) {
      this._bars.set(bar[0], bar);
    }
    this._changed.emit();
  }

  clear(): void {
    if (this._bars.size) {
      this._bars.clear();
      this._changed.emit();
    }
  }

  private _bars = new Map<number, IStreamBar>();
  private _window = 30;
  private _offset = 0;
  private _changed = new Signal<this, void>(this);
}

/**
 * Where the panel stands:
 * - `no-notebook`: no notebook is open;
 * - `no-kernel`: the notebook has no running kernel;
 * - `connecting`: a comm is being opened;
 * - `not-loaded`: the kernel has no comm target (jupyter_futures not imported yet);
 * - `connected`: snapshots arrive; `status` is `null` until a cluster runs.
 */
export type ConnectionState =
  'no-notebook' | 'no-kernel' | 'connecting' | 'not-loaded' | 'connected';

/** Futures states in the order the panel lists them. */
export const FUTURE_STATES = ['pending', 'running', 'done', 'failed', 'cancelled'];

export class ClusterModel {
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get state(): ConnectionState {
    return this._state;
  }

  get status(): IClusterStatus | null {
    return this._status;
  }

  /** The notebook the panel follows, e.g. `analysis.ipynb`. */
  get notebook(): string {
    return this._notebook;
  }

  setNotebook(name: string): void {
    if (name !== this._notebook) {
      this._notebook = name;
      this._changed.emit();
    }
  }

  /** The task stream: its own signal, so that bars and snapshots redraw apart. */
  readonly stream = new StreamModel();

  setState(state: ConnectionState): void {
    if (state !== this._state) {
      this._state = state;
      if (state !== 'connected') {
        this._status = null;
        this.stream.clear();
      }
      this._changed.emit();
    }
  }

  setStatus(status: IClusterStatus | null): void {
    this._state = 'connected';
    this._status = status;
    this._changed.emit();
  }

  /** The workers' logs, as the kernel last sent them (`null`: not asked for yet). */
  get logs(): Record<string, string> | null {
    return this._logs;
  }

  setLogs(logs: Record<string, string> | null): void {
    this._logs = logs;
    this._changed.emit();
  }

  private _changed = new Signal<this, void>(this);
  private _state: ConnectionState = 'no-notebook';
  private _status: IClusterStatus | null = null;
  private _logs: Record<string, string> | null = null;
  private _notebook = '';
}

/** Narrow an incoming comm payload to a status message. */
export function isStatusMessage(data: unknown): data is IStatusMessage {
  if (typeof data !== 'object' || data === null) {
    return false;
  }
  const message = data as { type?: unknown; status?: unknown };
  return (
    message.type === 'status' &&
    (message.status === null ||
      (typeof message.status === 'object' &&
        Array.isArray((message.status as { workers?: unknown }).workers)))
  );
}

/** Narrow an incoming comm payload to a logs message. */
export function isLogsMessage(data: unknown): data is ILogsMessage {
  if (typeof data !== 'object' || data === null) {
    return false;
  }
  const message = data as { type?: unknown; logs?: unknown };
  return message.type === 'logs' && (message.logs === null || typeof message.logs === 'object');
}

/** Narrow an incoming comm payload to a task-stream message. */
export function isStreamMessage(data: unknown): data is IStreamMessage {
  if (typeof data !== 'object' || data === null) {
    return false;
  }
  const message = data as { type?: unknown; bars?: unknown; now?: unknown };
  return (
    message.type === 'stream' && Array.isArray(message.bars) && typeof message.now === 'number'
  );
}
