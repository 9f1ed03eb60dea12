"""A site's administration: its site.yaml, checks, keys and the daemon that runs its SuperNode."""
