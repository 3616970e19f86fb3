"""What the facts mean: recordings -> Profile, and everything read from a Profile."""
