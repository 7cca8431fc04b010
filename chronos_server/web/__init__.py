"""The HTTP/1.1 server the API runs on: trio sockets + h11, no framework (docs/decisions.md)."""
