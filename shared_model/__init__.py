"""m3fed shared_model."""
