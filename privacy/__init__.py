"""m3fed privacy."""
