"""Trained risk models: outcome labels, training sets over as-of snapshots, calibrated estimators,
per-patient explanations, MLflow tracking and the exported artifact the nightly job scores with."""
