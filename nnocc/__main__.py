"""``python -m nnocc COMMAND ...`` runs ``nnocc_COMMAND ...`` (for places without the console scripts on PATH)."""
import importlib
import sys

from nnocc.cli.commands import COMMANDS


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print("usage: python -m nnocc COMMAND [options]\ncommands: " + ", ".join(sorted(COMMANDS)), file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(f"nnocc.cli.{COMMANDS[sys.argv[1]]}")
    module.main(sys.argv[2:])


if __name__ == "__main__":
    main()
