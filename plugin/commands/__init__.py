"""CLI subcommands. Each module has `register(subparsers)`; `plugin.cli` lists the modules."""
