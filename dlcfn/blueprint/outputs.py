"""Outputs: how `dlcfn status` and the user reach the cluster. Keys are names.O_* constants."""

from __future__ import annotations

from troposphere import GetAtt, If, Output, Ref, Sub, Template

from dlcfn.blueprint import names
from dlcfn.blueprint.storage import file_system_id

SSH_USER = "ubuntu"  # the Ubuntu Deep Learning AMIs' login


def add_outputs(t: Template) -> None:
    master = names.MASTER_INSTANCE
    host = "${" + master + ".PublicDnsName}"
    for key, value, what in (
        (names.O_MASTER_PUBLIC_DNS, GetAtt(master, "PublicDnsName"), "Public DNS name of the master"),
        (names.O_MASTER_PUBLIC_IP, GetAtt(master, "PublicIp"), "Public IP of the master"),
        (names.O_MASTER_PRIVATE_IP, GetAtt(master, "PrivateIp"), "Private IP of the master (kvstore scheduler)"),
        (names.O_MASTER_INSTANCE_ID, Ref(master), "Instance id of the master"),
        (names.O_WORKER_GROUP, Ref(names.WORKER_GROUP), "Auto Scaling group of the workers"),
        (names.O_FILE_SYSTEM_ID, file_system_id(), "EFS file system mounted at /efs on every node"),
        (names.O_MASTER_QUEUE_URL, Ref(names.MASTER_QUEUE), "SQS queue the master reads discovery messages from"),
        (names.O_WORKER_QUEUE_URL, Ref(names.WORKER_QUEUE), "SQS queue the workers read discovery messages from"),
        (names.O_SSH_COMMAND, If(names.C_HAS_KEY, Sub(f"ssh -i ~/.ssh/${{{names.P_KEY_NAME}}}.pem {SSH_USER}@{host}"),
                                 Sub(f"ssh {SSH_USER}@{host}")), "SSH command line for the master"),
    ):
        t.add_output(Output(key, Value=value, Description=what))
