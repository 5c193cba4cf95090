"""lhsoak: a chaos/stability harness for Longhorn recurring jobs under node reboots."""

__version__ = "0.1.0"
