"""``m3fed finetune``: a site adapts a model to its own labels (M3FM's label-efficiency protocol, personalisation)."""
