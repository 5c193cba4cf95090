"""The built-in lab: a local stand-in cluster with emulated machines, SSH endpoints, and EC2, Compute
Engine or Azure Resource Manager endpoints whose power actions act on those machines."""
