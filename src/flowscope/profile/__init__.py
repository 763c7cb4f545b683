"""Anonymous traffic profiles compatible with CESNET FlowTest's ft-profiler.

``records`` extracts the per-record columns (ft-profiler's time arithmetic),
``merge`` joins records into biflows with ft-profiler's rules (vectorised),
``output`` writes the profile CSV, ``report`` describes a profile's character.
See docs/PROFILE.md.
"""
