"""What a running model needs: the bundle on disk, its calibrated probability, score and tiers, and which bundle is the champion.

Training writes bundles and serving, the CLI and the report read them; both import this package, and
this package imports neither, so a scoring process never loads the fitting code.
"""
