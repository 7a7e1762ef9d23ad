"""`bilevel-ssl`, the installed command (pyproject's console entry point): the make targets of a
clone, for an installed package.

    bilevel-ssl list                                           make list
    bilevel-ssl exp NAME [--seed N] [--scale smoke] [--nproc N] [key=value ...]
                                                               make exp NAME=… SEED=… ARGS=…
    bilevel-ssl sweep NAME [--seeds 0,1,2] [--grid "k=a,b"] …  make sweep
    bilevel-ssl COMMAND --help                                 a command's options

Run as a console script, Python puts the script's folder first on `sys.path`, not the current
directory, so a folder of the user's own named `experiments` (or `analysis`, `methods`) does not
shadow the installed packages; `python -m experiments` run in such a folder imports that folder
instead (tests/test_packaging.py shows both). Each command's module is imported when it runs,
so one whose optional dependency is missing (`sweep` without submitit) does not stop the others.
It lives in `analysis` because it imports every layer (analysis → experiments → methods → bilevel).
"""

from __future__ import annotations

import importlib
import sys

# command -> (module whose `main(argv)` it runs, what it does: its make target)
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("experiments.command", "list the named experiments (make list)"),
    "exp": ("experiments.command", "train one named experiment (make exp)"),
    "sweep": ("analysis.sweep", "many runs as submitit jobs; the cluster extra (make sweep)"),
    "demo": ("analysis.demo", "the newcomer's tour, a few minutes on a CPU (make demo)"),
    "compare": ("analysis.compare", "every estimator on the same problems (make compare)"),
    "bench": ("analysis.bench", "a meta step's cost against its base's (make bench)"),
    "smoke": ("analysis.smoke", "every method x estimator x speed setting (make smoke)"),
    "baselines": ("analysis.baselines", "each SSL baseline against supervised (make baselines)"),
    "check-meta": ("analysis.meta_check", "each meta method against its base (make check-meta)"),
    "reproduce": ("analysis.reproduce", "train the runs the figures read (make reproduce)"),
    "figures": ("analysis.figures", "every figure and table whose runs exist (make figures)"),
    "ledger": ("experiments.ledger", "the paper settings ledger, in a clone (make ledger)"),
}
PROG = "bilevel-ssl"


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items()]
    return (
        f"usage: {PROG} COMMAND [options] [key=value ...]   ({PROG} COMMAND --help: its options)"
        f"\n       {PROG} --version\n\ncommands:\n" + "\n".join(lines)
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] == "--version":
        from bilevel import __version__

        print(f"{PROG} {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    from experiments.cli import run_cli

    module = importlib.import_module(COMMANDS[name][0])
    sys.argv[0] = f"{PROG} {name}"  # argparse's usage line names the command (its prog)
    if name == "list":
        rest = ["--list", *rest]
    if name == "ledger":  # it takes no arguments
        if rest:
            print(f"error: {PROG} ledger takes no arguments, got {rest}", file=sys.stderr)
            return 2
        return run_cli(module.main)
    return run_cli(lambda: module.main(rest))


if __name__ == "__main__":
    sys.exit(main())
