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
}

export interface IActorStatus {
  id: number | string;
  class: string;
  worker: number | string | null;
  state: string;
  calls_done: number;
  calls_queued: number;
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

  setState(state: ConnectionState): void {
    if (state !== this._state) {
      this._state = state;
      if (state !== 'connected') {
        this._status = null;
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
