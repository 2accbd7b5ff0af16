"""Capitation (小包干) of the chronic-disease fund: budget against spend per township, risk-adjusted
expected spend, year-end projection and the split of surplus or deficit between levels."""
