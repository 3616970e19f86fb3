"""Rendering for people: rich tables and live status, always on stderr unless it is the output."""
