"""A small project for the broadcast tests: websockets, event streams and a sync view on groups."""
