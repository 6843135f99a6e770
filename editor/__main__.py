"""Command-line entry point: `python -m editor COMMAND ...` (see `python -m editor --help`)."""

import sys

from editor.commands import main

if __name__ == "__main__":
    sys.exit(main())
