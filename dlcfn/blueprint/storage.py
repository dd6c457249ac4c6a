"""Storage: an encrypted EFS file system with a mount target in the private subnet, or an
existing file system (ExistingFileSystemId). `file_system_id()` picks the id either way.
"""

from __future__ import annotations

from troposphere import GetAtt, If, Ref, Sub, Tags, Template, efs

from dlcfn.blueprint import names
from dlcfn.blueprint.network import private_subnet


def file_system_id() -> If:
    return If(names.C_CREATE_FILE_SYSTEM, Ref(names.FILE_SYSTEM), Ref(names.P_EXISTING_FILE_SYSTEM_ID))


def add_storage(t: Template) -> None:
    cond = names.C_CREATE_FILE_SYSTEM
    # Delete with the stack: job results are copied to results/ on the user's machine; data to
    # keep across clusters belongs on a file system brought with ExistingFileSystemId, which the
    # stack never deletes.
    fs = t.add_resource(efs.FileSystem(
        names.FILE_SYSTEM, Condition=cond, Encrypted=True, PerformanceMode=Ref(names.P_EFS_PERFORMANCE_MODE),
        DeletionPolicy="Delete", UpdateReplacePolicy="Delete",
        FileSystemTags=Tags(Name=Sub("${AWS::StackName}-efs"))))
    t.add_resource(efs.MountTarget(names.MOUNT_TARGET, Condition=cond, FileSystemId=Ref(fs), SubnetId=private_subnet(),
                                   SecurityGroups=[GetAtt(names.EFS_SG, "GroupId")]))
