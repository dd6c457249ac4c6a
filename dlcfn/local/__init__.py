"""The embedded local cluster's parts: real OpenSSH server hosts on loopback addresses."""
