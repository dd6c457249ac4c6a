"""Running commands on remote hosts: the CommandRunner seam, its paramiko SSH implementation,
parallel fan-out over many hosts, and shipping files to them."""
