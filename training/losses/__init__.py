"""Mask-classification losses of the PEM reference: Hungarian matching and the set criterion."""
