"""`python -m chronos_server` = the `chronos` command."""

from chronos_server.cli import main

main()
