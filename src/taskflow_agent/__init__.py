"""The in-pod helper of taskflow. Empty until its own issue lands; the package exists so the
wheel layout is final."""
