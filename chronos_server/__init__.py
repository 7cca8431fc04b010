"""Chronos server: Quart-Trio API, the admission/dispatch/sweeper pipeline and the stores."""
