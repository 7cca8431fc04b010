"""Pure domain logic: states, transitions, backoff, schedule slots. No trio, no I/O, no clock."""
