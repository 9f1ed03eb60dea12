"""m3fed sim."""
