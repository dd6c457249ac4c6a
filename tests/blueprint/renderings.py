"""The renderings every template test runs on: default, bring-your-own VPC, spot, existing EFS."""

from __future__ import annotations

from dlcfn.spec.cluster import ClusterSpec

RENDERINGS: dict[str, ClusterSpec] = {
    "default": ClusterSpec(),
    "byo-vpc": ClusterSpec(vpc_id="vpc-0123456789abcdef0", public_subnet_id="subnet-0123abcd",
                           private_subnet_id="subnet-0123456789abcdef1", key_name="team", ssh_cidr="203.0.113.7/32"),
    "spot": ClusterSpec(workers=8, min_workers=6, worker_type="p4d.24xlarge", spot=True, placement_group=True),
    "existing-efs": ClusterSpec(efs_id="fs-0123456789abcdef0", availability_zone="us-west-2b", workers=1,
                                worker_type="c5.xlarge", master_type="t3.large"),
}
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-northeast-1")
