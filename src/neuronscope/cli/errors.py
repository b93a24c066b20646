"""The CLI's one error boundary: every failure ends as one clear line and a documented code.

Exit codes (also in the README):

* ``0``: success.
* ``1``: an unexpected error (a bug): one line on stderr plus the path of a log file holding
  the traceback; ``--debug`` (or ``NEURONSCOPE_DEBUG=1``) prints the traceback instead.
* ``2``: a user error: bad option, bad or damaged input file, output path refused
  (:class:`~neuronscope.errors.NeuronscopeError`), and Typer/Click usage errors.
* ``130``: interrupted (Ctrl-C).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from typer.exceptions import Abort, Exit, TyperException

from neuronscope.errors import NeuronscopeError

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USER = 2
EXIT_INTERRUPTED = 130

_state = {"debug": False}


def set_debug(value: bool) -> None:
    """Called by the app's ``--debug`` option."""
    _state["debug"] = value


def debug_enabled() -> bool:
    """``--debug`` was given or ``NEURONSCOPE_DEBUG`` is set to a true value."""
    env = os.environ.get("NEURONSCOPE_DEBUG", "").strip().lower()
    return _state["debug"] or env not in ("", "0", "false", "no")


def one_line(text: str) -> str:
    """A message on one line: newlines and other control characters shown escaped."""
    out = []
    for ch in text:
        if ch == "\n":
            out.append(" | ")
        elif ch == "\t":
            out.append(" ")
        elif ord(ch) < 32 or ord(ch) == 127 or 0xD800 <= ord(ch) <= 0xDFFF:
            out.append(ascii(ch)[1:-1])
        else:
            out.append(ch)
    return "".join(out)


def log_dir() -> Path:
    """Where tracebacks of unexpected errors go: ``$NEURONSCOPE_LOG_DIR`` or the temp dir."""
    custom = os.environ.get("NEURONSCOPE_LOG_DIR")
    return Path(custom) if custom else Path(tempfile.gettempdir()) / "neuronscope-logs"


def write_log(exc: BaseException, argv: Sequence[str]) -> Path | None:
    """Write the traceback of ``exc`` to a new log file; None when that fails too."""
    try:
        folder = log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        fd, name = tempfile.mkstemp(prefix=f"error-{stamp}-", suffix=".log", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write("neuronscope " + " ".join(argv) + "\n\n")
            fh.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        return Path(name)
    except OSError:
        return None


def _say(message: str) -> None:
    # Plain write, not Rich: the message holds user text (paths, words) that must print
    # literally, and the error path must not fail on markup or encoding.
    stream = sys.stderr
    try:
        stream.write(message + "\n")
        stream.flush()
    except UnicodeEncodeError:
        stream.write(message.encode("ascii", "backslashreplace").decode("ascii") + "\n")
    except (BrokenPipeError, OSError):
        pass


def run(command: Any, args: Sequence[str] | None = None, prog_name: str = "neuronscope") -> int:
    """Run ``command`` (``typer.main.get_command(app)``) and return the exit code."""
    argv = list(sys.argv[1:] if args is None else args)
    try:
        result: Any = command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except NeuronscopeError as err:
        if debug_enabled():
            traceback.print_exc()
        _say(f"error: {_clip(one_line(str(err)))}")
        return EXIT_USER
    except (Abort, KeyboardInterrupt):
        _say("interrupted")
        return EXIT_INTERRUPTED
    except TyperException as err:  # usage errors: Typer's own message and code (2)
        show = getattr(err, "show", None)
        if show is not None:
            show()
        else:
            _say(f"error: {one_line(err.format_message())}")
        return int(err.exit_code)
    except Exit as err:
        return int(err.exit_code)
    except BrokenPipeError:
        # `neuronscope rank ... | head`: the reader left; nothing more to say.
        _silence_stdout()
        return EXIT_OK
    except SystemExit as err:
        return err.code if isinstance(err.code, int) else (0 if err.code is None else 1)
    except Exception as err:  # noqa: BLE001 - this IS the boundary for unexpected errors
        if debug_enabled():
            traceback.print_exc()
            return EXIT_UNEXPECTED
        log = write_log(err, argv)
        where = f"; traceback in {log}" if log else ""
        _say(f"unexpected error ({type(err).__name__}): {_clip(one_line(str(err)), 500)}{where} "
             "(run with --debug to see it here; please report it)")
        return EXIT_UNEXPECTED
    code = result if isinstance(result, int) else EXIT_OK
    if code == EXIT_INTERRUPTED:  # Typer returns Ctrl-C as exit code 130
        _say("interrupted")
    return code


def _silence_stdout() -> None:
    # Python flushes stdout at exit and would raise BrokenPipeError again there.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _clip(text: str, limit: int = 2000) -> str:
    # A message quoting a 100,000-character input must stay readable.
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"
