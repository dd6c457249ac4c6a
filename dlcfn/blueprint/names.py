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

# More parameters (added with the blueprint)
P_AVAILABILITY_ZONE = "AvailabilityZone"
P_VPC_ID = "VpcId"
P_PUBLIC_SUBNET_ID = "PublicSubnetId"
P_PRIVATE_SUBNET_ID = "PrivateSubnetId"
P_EXISTING_FILE_SYSTEM_ID = "ExistingFileSystemId"
P_EFS_PERFORMANCE_MODE = "EfsPerformanceMode"
P_ROOT_VOLUME_GB = "RootVolumeSize"
P_SPOT = "SpotWorkers"
P_PLACEMENT_GROUP = "UsePlacementGroup"
P_AMI_PARAMETER = "AmiSsmParameter"
P_WAIT_TIMEOUT = "ClusterReadyTimeout"
P_GPU_FRAMEWORK = "GpuFrameworkPackages"
P_CPU_FRAMEWORK = "CpuFrameworkPackages"

# Conditions
C_CREATE_NETWORK = "CreateNetwork"
C_CREATE_FILE_SYSTEM = "CreateFileSystem"
C_NEW_PUBLIC_SUBNET = "NoPublicSubnetId"
C_NEW_PRIVATE_SUBNET = "NoPrivateSubnetId"
C_ROUTE_PUBLIC_SUBNET = "RoutePublicSubnet"
C_ROUTE_PRIVATE_SUBNET = "RoutePrivateSubnet"
C_HAS_AZ = "HasAvailabilityZone"
C_HAS_KEY = "HasKeyName"
C_HAS_SSH = "HasSshLocation"
C_HAS_IMAGE_ID = "HasImageId"
C_SPOT = "UseSpotWorkers"
C_PLACEMENT_GROUP = "UseClusterPlacementGroup"

# Resources (network, security, IAM, storage, discovery, compute)
VPC = "Vpc"
INTERNET_GATEWAY = "InternetGateway"
GATEWAY_ATTACHMENT = "GatewayAttachment"
PUBLIC_SUBNET = "PublicSubnet"
PRIVATE_SUBNET = "PrivateSubnet"
PUBLIC_ROUTE_TABLE = "PublicRouteTable"
PRIVATE_ROUTE_TABLE = "PrivateRouteTable"
PUBLIC_ROUTE = "PublicDefaultRoute"
PRIVATE_ROUTE = "PrivateDefaultRoute"
PUBLIC_ROUTE_ASSOC = "PublicSubnetRoutes"
PRIVATE_ROUTE_ASSOC = "PrivateSubnetRoutes"
NAT_EIP = "NatEip"
NAT_GATEWAY = "NatGateway"
MASTER_SG = "MasterSecurityGroup"
NODE_SG = "NodeSecurityGroup"
EFS_SG = "FileSystemSecurityGroup"
INSTANCE_ROLE = "NodeRole"
INSTANCE_PROFILE = "NodeInstanceProfile"
LAMBDA_ROLE = "AsgMonitorRole"
MOUNT_TARGET = "FileSystemMountTarget"
ASG_SUBSCRIPTION = "AsgMonitorSubscription"
ASG_PERMISSION = "AsgMonitorPermission"
ASG_LOG_GROUP = "AsgMonitorLogGroup"
MASTER_LAUNCH_TEMPLATE = "MasterLaunchTemplate"
WORKER_LAUNCH_TEMPLATE = "WorkerLaunchTemplate"
PLACEMENT_GROUP = "PlacementGroup"
