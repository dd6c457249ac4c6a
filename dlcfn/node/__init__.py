"""Code that runs inside AWS: the node bootstrap (UserData) and the ASG-monitor Lambda handler."""
