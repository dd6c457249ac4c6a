"""Logical IDs, parameter names and output keys of the cluster stack.

These are the contract between the template builders, the stack lifecycle (inventory from
outputs), the node bootstrap (UserData placeholders) and the local cluster. Never spell them as
string literals elsewhere.
"""

from __future__ import annotations

# Parameters
P_WORKER_COUNT = "WorkerCount"
P_MIN_WORKERS = "MinWorkers"
P_WORKER_TYPE = "WorkerInstanceType"
P_MASTER_TYPE = "MasterInstanceType"
P_KEY_NAME = "KeyName"
P_SSH_LOCATION = "SSHLocation"
P_IMAGE_ID = "ImageId"

# Resources the rest of dlcfn looks up
MASTER_INSTANCE = "MasterInstance"
WORKER_GROUP = "WorkerGroup"
FILE_SYSTEM = "FileSystem"
MASTER_QUEUE = "MasterQueue"
WORKER_QUEUE = "WorkerQueue"
ASG_TOPIC = "AsgNotificationTopic"
ASG_MONITOR_FUNCTION = "AsgMonitorFunction"
WAIT_HANDLE = "ClusterReadyHandle"
WAIT_CONDITION = "ClusterReady"

# Outputs (read by `dlcfn status` / inventory)
O_MASTER_PUBLIC_DNS = "MasterPublicDnsName"
O_MASTER_PUBLIC_IP = "MasterPublicIp"
O_MASTER_PRIVATE_IP = "MasterPrivateIp"
O_MASTER_INSTANCE_ID = "MasterInstanceId"
O_WORKER_GROUP = "WorkerGroupName"
O_FILE_SYSTEM_ID = "FileSystemId"
O_MASTER_QUEUE_URL = "MasterQueueUrl"
O_WORKER_QUEUE_URL = "WorkerQueueUrl"
O_SSH_COMMAND = "SshCommand"

# Tag put on the stack (and propagated to its resources) by create-stack
CLUSTER_TAG = "dlcfn:cluster"
