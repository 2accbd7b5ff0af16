"""Runnable jobs composed from the layers in risk/: nightly scoring, training, backfill."""
