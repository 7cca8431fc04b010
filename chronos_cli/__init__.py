"""The `chronos` command: the server's own commands (`serve`, `keys`, `secrets`, `migrate`,
defined in `chronos_server.cli` and loaded only when used) and the HTTP commands of the hosted
product's CLI, which talk to any server through `chronos_worker.Client`.

It never imports `chronos_server` at import time: a worker host without the server's
dependencies still has `chronos --version` and the HTTP commands.
"""
