"""risk: red / yellow / green chronic-disease risk stratification for county primary care."""

__version__ = "0.1.0"
