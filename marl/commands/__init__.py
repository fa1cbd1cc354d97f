"""The subcommands of ``gamelab``, one module per family; ``marl.cli`` parses and dispatches.

Each module imports heavy libraries inside its commands, so ``gamelab --help`` stays light.
"""
