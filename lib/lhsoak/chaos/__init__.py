"""Chaos drivers: reboot a node and prove at the machine level that it rebooted.

`driver` holds the `RebootDriver` protocol, the shared types and `drivers_for`, which picks one
backend module per node from the inventory (ssh, aws, gcp, azure, docker, k3d) and imports it only
when a node needs it, so a missing cloud SDK matters only to inventories that use that cloud.
`cloud` is the one driver behind the aws, gcp and azure modules, which only wrap their SDK;
`container` is what the docker and k3d drivers share (a restart proven by the start time).
"""
