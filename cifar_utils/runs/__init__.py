"""A run on disk: its folder and files, atomic writes and locks, provenance, the training loop, torchrun support, and the one decision to train or reuse. Imports core only."""
