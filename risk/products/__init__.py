"""Products built from tiers: follow-up priority lists, the unmanaged key-population list, run reports."""
