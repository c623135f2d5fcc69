"""IPython magics: ``%futures`` runs the cluster, ``%%remote`` runs a cell on it.

::

    %%remote NAME --cpu 2
    x = load(path)              ── analyse (cell_analysis.py): reads path, load; assigns x
    x.mean()                    ── ship path and load from the kernel (a Future: its value,
                                   resolved on the worker); compile under the cell's name
         │
         ▼  work = submit(run_cell, cell, {path, load})        (remote_cell.py)
            NAME = submit(take, work, LAST, locality=work)     the cell's last expression
            x    = submit(take, work, "x", locality=work)      a Future where x lives
         ▼
    non-blocking: a live future widget     --block: wait, then show the value (after 2 s,
                                           one bar for the cell, its state and time; the
                                           interrupt button cancels the cell's work)

The cell is named after the execution count the front end shows for it (``In[n]``), in
its futures and in the frames of its tracebacks. What cannot run on a worker (magics,
``!cmd``, ``return`` outside a function) is refused with a ``UsageError`` that names it;
top-level ``await`` runs the cell as a coroutine on the worker.

``--actor A`` runs the cell with ``call_actor(A, "__jf_run__", run_in_actor, ...)`` in a
namespace A keeps between cells (a namespace actor is created when A is not an actor
yet). ``--on F`` runs it where future F's value (or actor F) lives. ``--priority N``
starts it before queued work of lower priority (``submit(priority=)``).

``%load_ext jupyter_futures`` registers the magics and shows futures and actor handles as
live widgets; it starts nothing: the cluster starts with ``%futures start`` or the first
``%%remote`` cell.
"""

from __future__ import annotations

import ast
import concurrent.futures as cf
import keyword
import re
import time
from argparse import ArgumentTypeError
from typing import Any

import cloudpickle
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from ..actors import ActorHandle
from ..api import init
from ..backend import LocalityRequirement
from ..client import Client
from ..current import current_client_or_none
from ..errors import FutureTimeoutError, RemoteException, SerializationError
from ..futures import Future
from .cell_analysis import CellNames, analyse, kernel_only
from .kernel_output import attach, running_cell
from .remote_cell import LAST, CellCode, Namespace, run_cell, run_in_actor, take
from .tracebacks import install, remember_cell_code, uninstall
from .widgets.html import nbytes

PROGRESS_AFTER = 2.0  # seconds a --block cell waits before it shows a progress bar

_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]i?)?b?\s*", re.IGNORECASE)
_SCALE = {
    "": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
}


def parse_size(text: str) -> int:
    """``"512MB"``, ``"4GiB"``, ``"1.5g"``, ``"1000"`` (bytes) -> bytes."""
    m = _SIZE.fullmatch(text)
    if m is None:
        raise ArgumentTypeError(f"{text!r} is not a size (examples: 512MB, 4GiB, 1.5G)")
    return int(float(m[1]) * _SCALE[(m[2] or "").lower()])


def parse_indices(text: str) -> list[int]:
    """``"0,2"`` -> ``[0, 2]`` (GPU indices)."""
    try:
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise ArgumentTypeError(f"{text!r} is not a list of GPU indices (example: --gpus 0,2)") from None


def parse_resources(text: str) -> dict[str, float]:
    """``"licence=1,fpga=0.5"`` -> ``{"licence": 1.0, "fpga": 0.5}``."""
    out: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        try:
            if not sep or not key.strip():
                raise ValueError
            out[key.strip()] = float(value)
        except ValueError:
            raise ArgumentTypeError(
                f"{item!r} is not name=amount (example: --resources licence=1,fpga=2)"
            ) from None
    return out


def _identifier(what: str, name: str) -> str:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(f"{what} must be a Python name, got {name!r}")
    return name


@magics_class
class FuturesMagics(Magics):  # type: ignore[misc]
    """``%futures`` and ``%%remote``."""

    shell: Any

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.actor_names: dict[int, set[str]] = {}  # names each actor's namespace holds

    # -- %futures ----------------------------------------------------------------------
    @magic_arguments()
    @argument(
        "action",
        nargs="?",
        default="status",
        choices=["start", "stop", "status", "dashboard", "stream", "scale", "restart", "logs"],
    )
    @argument("count", nargs="?", type=int, help="with scale: the number of workers to have")
    @argument("-n", "--workers", type=int, help="worker processes (default: one per CPU)")
    @argument("--cpus-per-worker", type=float, help="CPUs each worker offers")
    @argument(
        "--gpus-per-worker", type=float, help="GPUs each GPU worker gets (default: 1, as many as found)"
    )
    @argument("--gpus", type=parse_indices, help="only these GPUs (e.g. 0,2; default: all found)")
    @argument("--ram-per-worker", type=parse_size, help="memory each worker offers (e.g. 4GB)")
    @argument("--store-capacity", type=parse_size, help="shared memory per store before spilling")
    @argument("--resources", type=parse_resources, help="custom resources per worker: name=amount,...")
    @argument("--address", help="connect to a Dask scheduler (tcp://host:8786) instead of starting workers")
    @line_magic
    def futures(self, line: str) -> Any:
        """Start, stop, resize or look at the cluster: ``%futures start [-n N] [--address
        ADDR] | stop | status | dashboard | stream | scale N | restart | logs [WORKER]``."""
        args = parse_argstring(self.futures, line)
        options = {
            k: v
            for k, v in {
                "cpus_per_worker": args.cpus_per_worker,
                "gpus_per_worker": args.gpus_per_worker,
                "gpus": args.gpus,
                "ram_per_worker": args.ram_per_worker,
                "store_capacity": args.store_capacity,
                "resources": args.resources,
                "address": args.address,
            }.items()
            if v is not None
        }
        if args.action != "start" and (options or args.workers is not None):
            raise UsageError(f"cluster options go with %futures start, not {args.action}")
        running = current_client_or_none()
        running = running if isinstance(running, Client) and not running.closed else None
        if args.action == "start":
            if running is not None:
                print(f"already running: {running!r} (%futures stop first to change it)")
                return None
            try:
                client = init(args.workers, **options)
            except (ValueError, TypeError) as exc:
                raise UsageError(str(exc)) from None
            print(f"started {client!r}")
            return None
        if args.action == "stop":
            if running is None:
                print("no cluster is running")
                return None
            running.shutdown()
            print(f"stopped {running!r}")
            return None
        if args.action == "dashboard":
            from .notebook import dashboard

            display(dashboard())
            return None
        if args.action == "stream":
            from .notebook import task_stream

            display(task_stream())
            return None
        if args.count is not None and args.action not in ("scale", "logs"):
            raise UsageError(f"%futures {args.action} takes no number")
        if args.action in ("scale", "restart", "logs"):
            if running is None:
                raise UsageError(f"no cluster is running to {args.action} (%futures start)")
            self._manage(running, args.action, args.count)
            return None
        print(status_text(running) if running is not None else "no cluster is running (%futures start)")
        return None

    def _manage(self, client: Client, action: str, count: int | None) -> None:
        """``%futures scale N``, ``restart`` and ``logs [WORKER]`` on the running cluster."""
        if action == "scale":
            if count is None:
                raise UsageError("%futures scale N: how many workers to have")
            try:
                client.scale(count)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            print(f"scaled to {count} workers: {client!r}")
        elif action == "restart":
            client.restart()
            print(f"restarted every worker: {client!r}")
        else:
            logs = client.logs(count)
            for worker, text in logs.items():
                print(f"--- worker {worker}\n{text.rstrip() or '(nothing yet)'}")
            if not logs:
                print("no worker logs (the threads engine's workers write to the kernel itself)")

    # -- %%remote ------------------------------------------------------------------------
    @magic_arguments()
    @argument("name", nargs="?", help="bind the cell's future (its last expression) to this name")
    @argument("--cpu", type=float, default=0.0, help="CPUs the cell needs")
    @argument("--gpu", type=float, default=0.0, help="GPUs the cell needs")
    @argument("--ram", type=parse_size, default=0, help="memory the cell needs (e.g. 4GB)")
    @argument("--resources", type=parse_resources, default=None, help="custom resources: name=amount,...")
    @argument("--on", metavar="F", help="run where future F's value (or actor F) lives")
    @argument("--actor", metavar="A", help="run in actor A's namespace (created if A is not an actor)")
    @argument("--retries", type=int, default=0, help="run the cell again up to N times if it raises")
    @argument("--priority", type=int, default=0, help="start before queued work of lower priority")
    @argument("--no-reconstruct", action="store_true", help="do not re-run the cell to rebuild lost values")
    @argument("--block", action="store_true", help="wait and show the result, as a local cell would")
    @cell_magic
    def remote(self, line: str, cell: str) -> Any:
        """Run this cell on a worker.

        The kernel variables the cell reads are sent along. A variable that holds a Future
        is a dependency: the cell waits for it and receives its value, so inside the cell
        ``total`` is what ``total.result()`` gives in the kernel (write ``total``, not
        ``total.result()``). Names the cell assigns become futures in the kernel; its last
        expression is the result of the cell's future, bound to NAME when given. Names
        starting with ``_`` stay private to the cell.

        The cell is plain Python run on a worker: top-level ``await`` works, while IPython
        magics, ``!cmd`` and ``x?`` need the kernel (use a local cell, or ``subprocess`` for
        a command). With ``--block`` the cell waits and shows its value as a local cell
        would; interrupting the kernel cancels the cell's work.
        """
        args = parse_argstring(self.remote, line)
        if args.name:
            _identifier("NAME", args.name)
        if args.retries < 0:
            raise UsageError("--retries must be 0 or more")
        if args.actor is not None:
            _identifier("--actor", args.actor)
            for flag, given in (
                ("--on", args.on),
                ("--retries", args.retries),
                ("--no-reconstruct", args.no_reconstruct),
                ("--priority", args.priority),
            ):
                if given:
                    raise UsageError(f"{flag} cannot be combined with --actor: the cell runs in the actor")
        _requirements(args)  # checked before anything is started
        number = running_cell(self.shell)
        filename = self.shell.compile.cache(f"%%remote {line}\n{cell}", number)
        try:
            code = compile("\n" + cell, filename, "exec", flags=TOP_LEVEL_AWAIT, dont_inherit=True)
        except SyntaxError as exc:
            refused = kernel_only(cell, self.shell.input_transformer_manager.transform_cell, exc)
            if refused is not None:
                raise UsageError(refused) from None
            self.shell.showsyntaxerror(filename)
            return None
        remember_cell_code(code)
        client = init()
        if not isinstance(client, Client):
            raise UsageError("%%remote runs in the kernel")
        attach(client)
        names = analyse(cell)
        label = args.name or f"%%remote In[{number}]"
        try:
            work, result, bound = self._submit(client, args, names, cell, filename, number)
        except SerializationError as exc:  # name the variable, not "argument 1"
            raise UsageError(self._unsendable(names.reads) or str(exc)) from None
        except ValueError as exc:  # an option the cluster refuses (UnsatisfiableRequirementError)
            raise UsageError(str(exc)) from None
        self.shell.user_ns.update(bound)
        if args.name:
            self.shell.user_ns[args.name] = result
        if args.block:
            value = self._wait(result, work, list(bound.values()), label)
            quiet = not names.ends_with_expression or cell.rstrip().endswith(";")
            return None if quiet else value
        _show_future(result, work=work, label=label)
        return None

    def _submit(
        self, client: Client, args: Any, names: CellNames, source: str, filename: str, number: int
    ) -> tuple[Future[Any], Future[Any], dict[str, Future[Any]]]:
        """Submit the cell, then the tasks that take its result and its names out."""
        assigns = tuple(n for n in names.assigns if not n.startswith("_"))
        requirements = _requirements(args)
        if args.actor:
            actor = self._actor(client, args.actor, requirements)
            known = self.actor_names.setdefault(actor.id, set())
            variables = self._variables(names.reads - known)
            cell = _cell_code(source, filename, assigns, args.retries, variables)
            work = client.call_actor(actor, "__jf_run__", run_in_actor, cell, variables)
            known.update(names.assigns, names.imports, ("self",))
            rebuild = False
        else:
            rebuild = not args.no_reconstruct
            variables = self._variables(names.reads)
            cell = _cell_code(source, filename, assigns, args.retries, variables)
            work = client.submit(
                run_cell,
                cell,
                variables,
                locality=self._locality(client, args.on) if args.on else None,
                allow_reconstruction=rebuild,
                name=f"%%remote In[{number}]",
                priority=args.priority,
                **requirements,
            )
        priority = 0 if args.actor else args.priority  # an actor's calls keep their order

        def take_out(key: str, name: str) -> Future[Any]:
            return client.submit(
                take, work, key, locality=work, allow_reconstruction=rebuild, name=name, priority=priority
            )

        result = take_out(LAST, args.name or f"In[{number}]")
        return work, result, {n: take_out(n, n) for n in assigns}

    # -- helpers -------------------------------------------------------------------------
    def _variables(self, reads: frozenset[str] | set[str]) -> dict[str, Any]:
        """The kernel variables to send: those the cell reads, minus IPython's own."""
        ns, hidden = self.shell.user_ns, self.shell.user_ns_hidden
        return {n: ns[n] for n in sorted(reads) if n in ns and not (n in hidden and hidden[n] is ns[n])}

    def _unsendable(self, reads: frozenset[str]) -> str | None:
        """Which variable could not be pickled, said for a user."""
        for n, value in self._variables(reads).items():
            try:
                cloudpickle.dumps(value, protocol=5, buffer_callback=lambda _b: None)
            except Exception as exc:
                return (
                    f"the cell reads {n}, a {type(value).__name__}, which cannot be sent to a worker "
                    f"({type(exc).__name__}: {exc}). Create it inside the cell, or keep it in an "
                    "actor (%%remote --actor NAME)."
                )
        return None

    def _actor(self, client: Client, name: str, requirements: dict[str, Any]) -> ActorHandle:
        value = self.shell.user_ns.get(name)
        if isinstance(value, Future) and value.actor_id is not None:
            value = value.result()
        if isinstance(value, ActorHandle):
            if any(requirements.values()):
                raise UsageError(f"{name} is already an actor: requirements apply when --actor creates one")
            return value
        if value is not None:
            raise UsageError(
                f"{name} is a {type(value).__name__}, not an actor handle; "
                "choose another name for a new remote namespace"
            )
        created = client.create_actor(Namespace, **requirements)
        assert created.actor_id is not None
        handle = ActorHandle(created.actor_id, Namespace.__name__, (), client)
        self.shell.user_ns[name] = handle
        return handle

    def _locality(self, client: Client, name: str) -> Future[Any] | LocalityRequirement:
        if name not in self.shell.user_ns:
            raise UsageError(f"--on {name}: no variable named {name}")
        target = self.shell.user_ns[name]
        if isinstance(target, Future) and target.actor_id is not None:
            target = target.result()
        if isinstance(target, ActorHandle):
            beside = client.actor_locality(target)
            if beside is None:
                raise UsageError(f"--on {name}: that actor is gone")
            return beside
        if isinstance(target, Future):
            return target
        raise UsageError(f"--on {name}: expected a future or an actor handle, got a {type(target).__name__}")

    def _wait(self, result: Future[Any], work: Future[Any], names: list[Future[Any]], label: str) -> Any:
        """Wait like a local cell; the interrupt button cancels the cell's work."""
        started = time.monotonic()
        bar: Any = None
        interrupted = False
        try:
            if not _wait_quietly(result, PROGRESS_AFTER) and _widgets_available():
                from .widgets.progress import CellProgress

                bar = CellProgress(result, work, label, started)
                display(bar)
            return result.result()
        except KeyboardInterrupt:
            interrupted = True
        except RemoteException as exc:
            exc._jf_hide_caller = True  # type: ignore[attr-defined]  # the cell's frames say it all
            raise
        finally:
            if bar is not None and not interrupted:
                bar.settle()  # in the cell's output before it ends: nbconvert keeps no later update
        # Outside the handler, so the interrupt reads as the user's own, not as a chain of
        # ours. Dependents first: cancelling the cell's run first would fail them instead.
        for f in (*names, result, work):
            f.cancel()
        if bar is not None:
            bar.settle(interrupted=True)
        raise KeyboardInterrupt(f"{label}: the cell's remote work was cancelled")


TOP_LEVEL_AWAIT = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


def _cell_code(
    source: str, filename: str, assigns: tuple[str, ...], retries: int, variables: dict[str, Any]
) -> CellCode:
    futures = tuple(n for n, v in variables.items() if isinstance(v, Future))
    return CellCode(source, filename, 2, assigns, retries, futures)


def _wait_quietly(f: Future[Any], timeout: float) -> bool:
    """Wait up to ``timeout`` for ``f``; True when it is done."""
    try:
        f.exception(timeout)
    except (FutureTimeoutError, cf.CancelledError):
        return f.done()
    return True


def _requirements(args: Any) -> dict[str, Any]:
    """``submit``/``create_actor`` keywords from ``--cpu``, ``--gpu``, ``--ram``, ``--resources``."""
    given = {"min_cpu": args.cpu, "min_gpu": args.gpu, "min_ram": args.ram, "resources": args.resources}
    for key, value in given.items():
        if isinstance(value, (int, float)) and value < 0:
            raise UsageError(f"--{key.removeprefix('min_')} must be 0 or more")
    for reserved in ("cpu", "gpu", "ram"):
        if reserved in (args.resources or {}):
            amount = f"{args.resources[reserved]:g}"
            raise UsageError(
                f"--resources {reserved}={amount}: {reserved} has an option of its own, "
                f"use --{reserved} {amount}"
            )
    return {k: v for k, v in given.items() if v}


def status_text(client: Client) -> str:
    """A few lines on the cluster, for ``%futures status``."""
    st = client.status()
    lines = [f"{client!r}"]
    for w in st["workers"]:
        lines.append(
            f"  worker {w['id']} (pid {w['pid']}): {w['cpu_percent']:.0f}% CPU, "
            f"{nbytes(w['rss'])} RSS, "
            f"store {nbytes(w['store_used'])} / {nbytes(w['store_capacity'])}, "
            f"{len(w['running'])} running, {len(w['actors'])} actors"
        )
    counts = ", ".join(f"{n} {s}" for s, n in sorted(st["futures"].items())) or "none"
    lines.append(f"  futures: {counts}")
    lines.append(f"  actors: {len(st['actors'])}")
    o = st["objects"]
    lines.append(f"  objects: {o['count']} ({nbytes(o['bytes'])}, {nbytes(o['spilled'])} spilled)")
    return "\n".join(lines)


# -- display of futures and actors --------------------------------------------------------


def _widgets_available() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def _show_future(f: Future[Any], work: Future[Any] | None = None, label: str | None = None) -> None:
    if _widgets_available():
        from .widgets.future_widget import FutureWidget

        display(FutureWidget(f, work=work, label=label))
    else:
        display(f)


def _display_actor(handle: ActorHandle) -> None:
    from .widgets.actor_widget import ActorWidget

    client = current_client_or_none()
    display(ActorWidget(handle, client))


def load_ipython_extension(shell: Any) -> None:
    """Register the magics, the widgets of futures and actors, and the comm target of the
    JupyterLab cluster panel (``labcomm.py``). Starts nothing."""
    from .labcomm import register_comm_target

    shell.register_magics(FuturesMagics)
    register_comm_target(shell)
    install(shell)  # errors raised for the user's mistakes end at the user's own line
    from .integration import show_cards

    show_cards(shell)
    if _widgets_available():
        formatter = shell.display_formatter.ipython_display_formatter
        formatter.for_type(Future, _show_future)
        formatter.for_type(ActorHandle, _display_actor)
    client = current_client_or_none()
    if isinstance(client, Client) and not client.closed:
        attach(client)


def unload_ipython_extension(shell: Any) -> None:
    """Remove what :func:`load_ipython_extension` registered."""
    from .labcomm import unregister_comm_target

    unregister_comm_target(shell)
    uninstall(shell)
    magics = shell.magics_manager
    magics.magics["line"].pop("futures", None)
    magics.magics["cell"].pop("remote", None)
    magics.registry.pop(FuturesMagics.__name__, None)
    formatter = shell.display_formatter.ipython_display_formatter
    for kind in (Future, ActorHandle):
        if kind in formatter.type_printers:
            formatter.pop(kind)
