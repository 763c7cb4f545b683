"""What every command shares: state from the global options, clean errors, time parsing, progress."""

from __future__ import annotations

import errno
import functools
import os
import select
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from flowscope.diagnostics import Skips
from flowscope.errors import FlowscopeError
from flowscope.lake.layout import DEFAULT_LAKE, Lake
from flowscope.times import parse_time

if TYPE_CHECKING:  # rich is imported when something is printed: a quiet run never draws (rich.console: 25 ms)
    from rich.console import Console

T = TypeVar("T")


def message_console() -> Console:
    """The stderr console for messages; when stderr is not a terminal (a log, a pipe) lines are not
    wrapped at rich's default 80 columns, so a path or a number is never split over two lines."""
    from rich.console import Console

    console = Console(stderr=True)
    console.soft_wrap = not console.is_terminal
    return console


@dataclass
class CliState:
    """The global options, wherever they were given (before or after the command's name)."""

    lake_path: str = DEFAULT_LAKE
    verbose: int = 0
    quiet: bool = False
    debug: bool = False
    _console: Console | None = field(default=None, repr=False)

    @property
    def console(self) -> Console:
        """The stderr console (``message_console``), made on first use."""
        if self._console is None:
            self._console = message_console()
        return self._console

    @property
    def verbosity(self) -> int:
        """-1 with -q (it wins over -v), otherwise the number of -v."""
        return -1 if self.quiet else self.verbose

    @property
    def lake(self) -> Lake:
        return Lake.at(self.lake_path)

    def info(self, message: str) -> None:
        """Plain text (no rich markup: a path or SQL with brackets prints as it is)."""
        if self.verbosity >= 0:
            self._say(message)

    def detail(self, message: str) -> None:
        if self.verbosity >= 1:
            self._say(message)

    def reading_stdin(self, what: str) -> None:
        """Say so when ``-`` reads a terminal: the command otherwise sits silent, as if it hung. A closed standard
        input (``<&-``: no ``sys.stdin``) is an error (it was 'AttributeError: ... no attribute isatty')."""
        if sys.stdin is None:
            raise FlowscopeError(f"- reads {what} from standard input, which is closed")
        if sys.stdin.isatty():
            self.info(f"reading {what} from the terminal; Ctrl-D ends it (or pipe it in)")

    def report_skips(self, skips: Skips) -> None:
        """Skips are always shown (even with -q): silent loss is worse than noise."""
        for line in skips.lines():
            self._say(line, warning=True)

    def _say(self, message: str, *, warning: bool = False) -> None:
        """A message line on stderr: through rich on a terminal; into a log or a pipe as it is, without importing
        rich (rich.console: 25 ms of start-up), which would print it the same there (no colour, no wrapping)."""
        if self._console is None and not stderr_may_be_terminal():
            click.echo(f"warning: {message}" if warning else message, err=True)
        elif warning:
            from rich.markup import escape

            self.console.print(f"[yellow]warning:[/] {escape(message)}")
        else:
            self.console.print(message, markup=False)


def stderr_may_be_terminal() -> bool:
    """False where stderr is surely no terminal to rich (``Console.is_terminal``): not a tty, and neither
    ``TTY_COMPATIBLE`` nor ``FORCE_COLOR`` set, with which rich decides otherwise (it is then asked)."""
    if "TTY_COMPATIBLE" in os.environ or "FORCE_COLOR" in os.environ:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # no stream, or a closed one
        return False


pass_state = click.make_pass_decorator(CliState)


STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
"""Errors of the place written to, not of flowscope: the user's to fix (exit 2), not a crash (exit 1)."""


def storage_error(exc: OSError) -> str:
    """One line for a full disk or a refused write (pyarrow's errors carry the errno but no file name).

    Every destination is atomic or transactional (ARCHITECTURE.md, "The guarantees"), so what earlier runs
    and completed units committed is intact (a rerun skips the inputs already stored); the line says so,
    since it is the first thing one asks.
    """
    reason = os.strerror(exc.errno) if exc.errno is not None else str(exc)
    where = f": {exc.filename}" if exc.filename else ""
    return f"{reason.lower()}{where} (what was committed before is intact)"


def fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def run_cleanly(action: Callable[[], T], *, debug: Callable[[], bool]) -> T:
    """User errors become one ``error:`` line and exit 2; anything unexpected exit 1; Ctrl-C exit 130.

    When the reader of stdout goes away (``flowscope query ... | head``) the command ends quietly with
    exit 0, as ``seq 1 1000000 | head -1`` does. ``debug`` is asked only when something went wrong, so a
    ``--debug`` given after the command's name counts too.
    """
    try:
        result = action()
        sys.stdout.flush()  # inside the handlers: a reader gone before the last write is seen here, not at exit
        return result
    except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
        raise
    except KeyboardInterrupt as exc:
        if debug():
            raise
        click.echo(f"interrupted; {interrupted_note(exc)}", err=True)
        sys.exit(130)
    except FlowscopeError as exc:
        if debug():
            raise
        fail(str(exc))
    except Exception as exc:
        if _is_duckdb_interrupt(exc) and not debug():
            click.echo(f"interrupted; {interrupted_note(exc)}", err=True)
            sys.exit(130)
        if _is_duckdb_error(exc) and not debug():
            fail(str(exc).splitlines()[0])
        if isinstance(exc, OSError) and exc.errno == errno.EPIPE and _stdout_reader_gone():
            _silence_stdout()
            sys.exit(0)
        if debug():
            raise
        if isinstance(exc, OSError) and exc.errno in STORAGE_ERRORS:
            fail(storage_error(exc))
        fail(f"{type(exc).__name__}: {exc} (rerun with --debug for a traceback)", code=1)


def interrupted_note(interrupt: BaseException) -> str:
    """What an interrupt left: each destination's line, where the run that was interrupted says
    (``pipeline.abort``); else what holds for every command (each writes in commits or transactions)."""
    return "; ".join(getattr(interrupt, "__notes__", None) or ["what was committed before is kept"])


def only_reading(command: Callable[..., T]) -> Callable[..., T]:
    """A command that changes nothing stored (``query``, ``top``): Ctrl-C says so, or that its ``-o`` file was
    not written, where the general "what was committed before is kept" spoke of commits it never makes."""

    @functools.wraps(command)
    def reading(*args: Any, **kwargs: Any) -> T:
        try:
            return command(*args, **kwargs)
        except BaseException as exc:
            stopped = isinstance(exc, KeyboardInterrupt) or (isinstance(exc, Exception) and _is_duckdb_interrupt(exc))
            if stopped and not getattr(exc, "__notes__", None):  # none from an interrupted output file's sink
                from flowscope.sinks.files import STDOUT, not_written

                output = kwargs.get("output")
                exc.add_note(not_written(output) if output and output != STDOUT else "this command stores nothing")
            raise

    return reading


def _is_duckdb_error(exc: Exception) -> bool:
    """A DuckDB error (a user's SQL, a damaged lake file): shown as its first line. Looked up, not imported:
    duckdb is 34 MiB of RSS that commands which never query (``collect``) should not carry."""
    duckdb = sys.modules.get("duckdb")
    return duckdb is not None and isinstance(exc, duckdb.Error)


def _is_duckdb_interrupt(exc: Exception) -> bool:
    """Ctrl-C during a DuckDB statement: DuckDB takes the signal and raises its own error instead of
    ``KeyboardInterrupt`` (the installed build: ``RuntimeError('Query interrupted')``, once the statement ends;
    others ``duckdb.InterruptException``). It printed ``error: RuntimeError: Query interrupted``, exit 1."""
    duckdb = sys.modules.get("duckdb")
    if duckdb is None:
        return False
    return isinstance(exc, duckdb.InterruptException) or (type(exc) is RuntimeError and str(exc) == "Query interrupted")


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe nobody reads any more (poll reports POLLERR on it).

    A broken pipe elsewhere (a database socket, a worker's pipe) is a real error and must not end
    the command quietly, so the error's errno alone is not enough.
    """
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError):  # stdout closed or not a real file (an embedding program's buffer)
        return False


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush of what is still buffered does not
    print "Exception ignored ... BrokenPipeError" (the recipe of Python's signal module docs)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


class TimeParam(click.ParamType):
    name = "TIME"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_time(str(value))
        except FlowscopeError as exc:
            self.fail(str(exc), param, ctx)


class OutputFile(click.Path):
    """A file the command writes (``-o FILE``): checked as the command line is parsed, so a missing directory
    (a typo) is one ``error:`` line, exit 2, before any input is read or anything recorded
    (``sinks.files.check_output_file``); ``-`` passes (standard output) unless ``dash`` is False (an image)."""

    def __init__(self, path_type: type | None = None, *, dash: bool = True) -> None:
        super().__init__(dir_okay=False, allow_dash=dash, path_type=path_type)

    def convert(
        self, value: str | os.PathLike[str], param: click.Parameter | None, ctx: click.Context | None
    ) -> str | bytes | os.PathLike[str]:
        from flowscope.sinks.files import STDOUT, check_output_file  # pyarrow's writers: only when a file is named

        if not self.allow_dash and str(value) == STDOUT:  # it wrote a file named "-"
            self.fail("name a file: this output cannot go to standard output", param, ctx)
        path = super().convert(value, param, ctx)
        check_output_file(str(path))
        return path


def one_file(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> str | None:
    """The callback of an ``-o`` declared ``multiple`` where the command writes one file (a result, a profile):
    given twice, the last one used to win without a word."""
    if len(values) > 1:
        raise click.UsageError(f"-o given {len(values)} times ({', '.join(values)}): name one file")
    return values[0] if values else None


def check_time_range(since: datetime | None, until: datetime | None) -> None:
    """A usage error for ``--since`` at or after ``--until`` (``--since 1h --until 2d``), which selects nothing:
    it answered with an empty report, as if there were no traffic."""
    if since is not None and until is not None and since >= until:
        raise click.UsageError(
            f"--since ({since.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}) must be before "
            f"--until ({until.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}); "
            "relative times (6h, 2d) count back from now"
        )


@contextmanager
def progress_bar(state: CliState, description: str, total: float | None) -> Iterator[Callable[..., None]]:
    """A rich progress bar on stderr, none with -q or when stderr is not a terminal; rich.progress is imported
    only for a bar drawn, so commands without long work (``top``) and quiet or logged runs start without it."""
    if state.verbosity < 0 or not stderr_may_be_terminal() or not state.console.is_terminal:
        yield lambda **_: None
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=state.console, transient=True) as progress:
        task = progress.add_task(description, total=total)

        def update(**kwargs: object) -> None:
            progress.update(task, **kwargs)  # type: ignore[arg-type]

        yield update
