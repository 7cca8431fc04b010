"""Chronos terminal dashboard: a Textual app (asyncio) talking to a Chronos server over HTTP.

Modules: `api` (the typed REST client and its error tree), `models` (resources), `format` and
`rows` (pure rendering), `widgets` (LiveTable, dialogs), `names` (schedule names by id),
`base` (refresh loop, actions), `overview` / `lists` / `details` (screens), `app` (ChronosApp),
`cli` (`chronos-tui`).
It never imports trio or `chronos_server` (a test enforces it).
"""
