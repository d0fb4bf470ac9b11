"""Entry point of the bundled console (PyInstaller's one-folder build of `replicadesk-console`).

A frozen program has no interpreter to run `python -m core ...`, yet the lab starts its children
that way (`sys.executable -m core mover serve ...`, `-m core lab serve`): in the bundle
`sys.executable` is this program, so `-m core ARGS` as the first two arguments runs core's
command line, as the interpreter would. Anything else is the console's own arguments.
"""

import sys


def main() -> int:
    if sys.argv[1:3] == ["-m", "core"]:
        from core.cli.main import main as replicadesk

        return replicadesk(sys.argv[3:])
    from gui.app import main as console

    return console(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
