/**
 * The comm between the Cluster panel and the kernel of the notebook it follows.
 *
 * The comm is open only while the panel is visible. The kernel side
 * (`jupyter_futures/labcomm.py`) answers an open with a snapshot and then sends one
 * whenever the cluster changes, at most about twice a second. A kernel in which
 * jupyter_futures was never loaded has no comm target and closes the comm at once; the
 * panel then tries again after the next cell that mentions `jupyter_futures` finishes,
 * or when asked to.
 */
import { ISessionContext } from '@jupyterlab/apputils';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';

import {
  COMM_TARGET,
  ClusterModel,
  ILogsRequest,
  IRefreshMessage,
  isLogsMessage,
  isStatusMessage,
  isStreamMessage
} from './model';

/** Kernel states after which the kernel side starts from scratch. */
const RESET_STATES: ReadonlyArray<Kernel.Status> = ['restarting', 'autorestarting', 'dead'];

export class ClusterConnection implements IDisposable {
  constructor(model: ClusterModel) {
    this._model = model;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** Whether the panel is visible: the comm is open only then. */
  get active(): boolean {
    return this._active;
  }

  set active(value: boolean) {
    if (value === this._active) {
      return;
    }
    this._active = value;
    if (!value) {
      this._close();
      return;
    }
    if (this._model.state === 'not-loaded') {
      // Shown again: the kernel may have loaded jupyter_futures meanwhile.
      this._model.setState('connecting');
    }
    this._update();
  }

  /**
   * Follow the kernel of another notebook (`null`: none is open).
   */
  follow(context: ISessionContext | null, name: string): void {
    if (context === this._context) {
      return;
    }
    this._context?.kernelChanged.disconnect(this._update, this);
    this._context = context;
    this._context?.kernelChanged.connect(this._update, this);
    this._model.setNotebook(name);
    this._update();
  }

  /** Ask for a fresh snapshot, or try to connect again. */
  refresh(): void {
    if (this._comm) {
      const message: IRefreshMessage = { type: 'refresh' };
      this._comm.send({ ...message });
    } else if (this._kernel) {
      this._model.setState('connecting');
      this._update();
    }
  }

  /** Ask the kernel for the workers' logs (the answer lands in the model). */
  requestLogs(): void {
    if (this._comm) {
      const message: ILogsRequest = { type: 'logs' };
      this._comm.send({ ...message });
    }
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._close();
    this._watch(null);
    this._context?.kernelChanged.disconnect(this._update, this);
    this._context = null;
  }

  private _update(): void {
    const kernel = this._context?.session?.kernel ?? null;
    if (kernel !== this._kernel) {
      this._close();
      this._watch(kernel);
    }
    if (!this._context) {
      this._model.setState('no-notebook');
    } else if (!kernel) {
      this._model.setState('no-kernel');
    } else if (this._active && !this._comm && this._model.state === 'connecting') {
      void this._open();
    }
  }

  private _watch(kernel: Kernel.IKernelConnection | null): void {
    this._kernel?.statusChanged.disconnect(this._onStatus, this);
    this._kernel?.iopubMessage.disconnect(this._onIOPub, this);
    this._kernel = kernel;
    this._probeAfter = null;
    kernel?.statusChanged.connect(this._onStatus, this);
    kernel?.iopubMessage.connect(this._onIOPub, this);
    if (kernel) {
      // A new kernel: worth one look, whatever happened with the previous one.
      this._model.setState('connecting');
    }
  }

  private async _open(): Promise<void> {
    const kernel = this._kernel;
    if (!kernel || !this._active || this._comm || this._isDisposed) {
      return;
    }
    const comm = kernel.createComm(COMM_TARGET);
    this._comm = comm;
    this._model.setState('connecting');
    comm.onMsg = (msg: KernelMessage.ICommMsgMsg) => {
      const data = msg.content.data;
      if (this._comm === comm && isStatusMessage(data)) {
        this._model.setStatus(data.status);
      } else if (this._comm === comm && isLogsMessage(data)) {
        this._model.setLogs(data.logs);
      } else if (this._comm === comm && isStreamMessage(data)) {
        this._model.stream.apply(data);
      }
    };
    comm.onClose = () => {
      // Closed by the kernel: no comm target there (yet), or the extension unloaded.
      if (this._comm === comm) {
        this._comm = null;
        this._model.setState('not-loaded');
      }
    };
    try {
      await comm.open({ type: 'hello' }).done;
    } catch (reason) {
      if (this._comm === comm) {
        this._comm = null;
        this._model.setState('not-loaded');
      }
    }
  }

  private _close(): void {
    const comm = this._comm;
    this._comm = null;
    if (comm && !comm.isDisposed) {
      comm.onClose = () => undefined;
      try {
        comm.close();
      } catch (reason) {
        // The kernel is gone already; nothing to tell it.
      }
    }
    if (this._model.state === 'connected') {
      this._model.setState('connecting');
    }
  }

  private _onStatus(_: Kernel.IKernelConnection, status: Kernel.Status): void {
    if (RESET_STATES.includes(status)) {
      // The kernel drops its comms on restart; the new process has no cluster yet.
      this._comm = null;
      this._model.setState(status === 'dead' ? 'no-kernel' : 'not-loaded');
    }
  }

  private _onIOPub(_: Kernel.IKernelConnection, msg: KernelMessage.IIOPubMessage): void {
    if (this._comm || !this._active) {
      return;
    }
    const parent = (msg.parent_header as Partial<KernelMessage.IHeader>).msg_id;
    if (KernelMessage.isExecuteInputMsg(msg)) {
      if (msg.content.code.includes('jupyter_futures')) {
        this._probeAfter = parent ?? null;
      }
    } else if (
      KernelMessage.isStatusMsg(msg) &&
      msg.content.execution_state === 'idle' &&
      parent !== undefined &&
      parent === this._probeAfter
    ) {
      this._probeAfter = null;
      this._model.setState('connecting');
      void this._open();
    }
  }

  private _model: ClusterModel;
  private _context: ISessionContext | null = null;
  private _kernel: Kernel.IKernelConnection | null = null;
  private _comm: Kernel.IComm | null = null;
  private _probeAfter: string | null = null;
  private _active = false;
  private _isDisposed = false;
}
