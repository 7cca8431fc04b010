-- When each API key was last used (Unix ms; NULL: never since this migration). Written at most
-- once a minute per key (a conditional UPDATE the API issues when a process has not marked the
-- key for a minute), never per request; `chronos keys list` shows it. Touches `api_keys` only,
-- so it applies the same before or after the other pending migrations (0007-0009).
ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
