"""Butler-facing pieces: the model storage class and formatter, dataset-type
definitions, and helpers that build data repositories.
"""
