"""The built-in lab: a local stand-in cluster with emulated machines, SSH and EC2 endpoints."""
