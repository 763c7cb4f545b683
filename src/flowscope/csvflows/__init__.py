"""Flow CSV traces (CICFlowMeter / CIC-IDS, the Kaggle 87-column set and its subsets, ``nfdump -o csv``,
ft-profiler input) read into the flow schema with vectorised pyarrow parsing.

``header`` normalises column names, ``dialects`` says how each CSV family maps onto the
flow schema, ``values`` converts text columns, ``reader`` streams files or stdin.
"""
