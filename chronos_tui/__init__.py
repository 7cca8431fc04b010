"""Chronos terminal dashboard (Textual, asyncio, HTTP only). Built in its own issue."""
