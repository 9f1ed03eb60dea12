"""m3fed server."""
