"""One module per command: ``packer.cli`` imports a command's module only when that command
runs (or shows its --help), so each command pays only for the stages it uses."""
