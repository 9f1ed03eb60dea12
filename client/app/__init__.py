"""The ClientApp and what a round runs at a site: local update, privacy, SecAgg+, faults, progress."""
