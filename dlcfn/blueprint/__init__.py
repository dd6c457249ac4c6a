"""Pure troposphere builders for the cluster template: no boto3, no clock, no randomness."""
