"""Command-line endings: a bad setting, bad data, an I/O problem, a diverged run or Ctrl-C ends
in one `error:` (or `interrupted`) paragraph and the exit status its error declares
(`experiments.errors`: 2 nothing was trained, 1 diverged, 130 Ctrl-C, 143 SIGTERM), never a
traceback.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable

from bilevel.extras import MissingExtra

from .errors import ConfigError, DataError, Diverged, Interrupted, Stopped

PROG = "bilevel-ssl"  # the installed command (`analysis.commands`); `make TARGET` in a clone


def installed() -> bool:
    """Whether this process runs as the installed `bilevel-ssl` command (which names itself in
    `sys.argv[0]`): its hints then name `bilevel-ssl COMMAND`, a clone's `make TARGET`."""
    return os.path.basename(sys.argv[0]).startswith(PROG)


def spelled(target: str) -> str:
    """`make TARGET` or, under the installed command, `bilevel-ssl TARGET`."""
    return f"{PROG} {target}" if installed() else f"make {target}"


def run_cli(main: Callable[[], int | None], again: str = "The same command") -> int:
    """Run `main()` and turn the toolkit's errors into a message and an exit status.
    `again` says which command resumes an interrupted run. Of several processes of one run,
    rank 0 alone prints (they all stop with the same status)."""
    if int(os.environ.get("RANK", "0")) > 0:
        with contextlib.redirect_stderr(io.StringIO()):
            return _run_cli(main, again)
    return _run_cli(main, again)


def _run_cli(main: Callable[[], int | None], again: str) -> int:
    try:
        return main() or 0
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return err.status
    except MissingExtra as err:  # an optional dependency the command needs; it names the extra
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # an unwritable RUNS_ROOT, a full disk, a file where a folder goes
        print(
            f"error: {err} (a file-system problem at that path: permissions, free space, or a "
            "file where a directory is expected; RUNS_ROOT and DATA_ROOT move the folders)",
            file=sys.stderr,
        )
        return 2
    except Diverged as err:
        print(f"\nerror: {err}", file=sys.stderr)
        return err.status
    except Interrupted as err:
        where = f"step {err.kept}" if err.kept else "the start (no checkpoint yet)"
        print(
            f"\ninterrupted at step {err.step + 1}; {err.path} keeps its last checkpoint. "
            f"{again} resumes from {where}.",
            file=sys.stderr,
        )
        return err.status
    except Stopped as err:
        print(f"\n{err}. {again} resumes from step {err.step}.", file=sys.stderr)
        return err.status
    except KeyboardInterrupt:
        print("\ninterrupted (no run was training; nothing to resume)", file=sys.stderr)
        return 130
