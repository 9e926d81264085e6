"""Nebula's core: configuration, logging, the S3 client helper, network guard, serving, ops.

Every package may import these modules; they import no other Nebula package
(see README, Architecture).
"""
