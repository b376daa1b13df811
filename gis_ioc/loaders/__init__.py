"""Loaders: boundaries (here), vector files and planning drawings (to come)."""
