"""Synthetic county generator: realistic, calibrated longitudinal data in the input data contract.

Parameters and calibration targets live in risk/definitions/synth_county.yaml; see docs/synthetic-data.md.
"""

from risk.synth.generate import SynthConfig, SynthSummary, generate_county

__all__ = ["SynthConfig", "SynthSummary", "generate_county"]
