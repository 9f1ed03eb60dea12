"""m3fed client."""
